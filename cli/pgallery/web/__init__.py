"""`pgallery serve`: the search in a browser, and its JSON twin.

    from pgallery.web import create_app, WebConfig
    app = create_app(database_url, WebConfig())        # an ASGI app; uvicorn serves it

The web layer is as thin as the CLI: a request is parsed into a SearchRequest (query.py),
answered by one call of a SQL search function (service.py), and shown as a page (the
templates in pgallery/templates/, shared with rendering/html.py's static pages) or as JSON,
from the same route code (app.py). Uploads and image URLs (uploads.py, read
through pgallery.intake with the public-only address policy) and thumbnails
(thumbnail_cache.py) each have their own module.
"""

from pgallery.web.config import WebConfig

__all__ = ["create_app", "WebConfig"]


def __getattr__(name: str):
    # The app (Starlette, Jinja, the routes) is imported on first use, not with the
    # package: every CLI command reads WebConfig's defaults for its help, and only
    # `pgallery serve` needs the app (about a quarter of a command's start-up time).
    if name == "create_app":
        from pgallery.web.app import create_app
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What a running web server may accept, and where it keeps its files (one frozen object)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class WebConfig:
    """Limits and places for `pgallery serve`; every field has a safe default."""

    home: Path = field(default_factory=lambda: Path(".pgallery"))  # thumbnail cache lives here
    max_upload_bytes: int = 20 * MB      # an uploaded or fetched image, bytes
    max_pixels: int = 40_000_000         # width x height, checked before decoding (bombs)
    max_uploads_kept: int = 256          # uploaded queries remembered (by content hash)
    allow_private_urls: bool = False     # may an image URL point at this machine / the LAN?
    url_timeout: float = 10.0            # seconds to fetch an image URL
    pool_size: int = 8                   # database connections for searches (per worker)
    shared_uploads: Path | None = None   # with several workers: where they share uploads
    # on a network (web/limits.py, web/tokens.py, web/access_log.py); None/empty: off
    max_concurrent: int | None = None    # requests answered at once; past it 503
    rate_limit: float | None = None      # requests a second per client; past it 429
    request_timeout: float | None = 60.0 # seconds for a request's body to arrive; then 408
    max_url_bytes: int = 8192            # path + query; longer is 414
    tokens: tuple[str, ...] = ()         # bearer tokens for the API and uploads (401)
    private: bool = False                # with tokens: the pages need one as well
    cors_origins: tuple[str, ...] = ()   # sites whose pages may call the API
    access_log: str | None = None        # "text" or "json": one line a request on stderr
    read_url: str | None = None          # searches go there (standbys, libpq multi-host);
    # the prompt cache still goes to the primary (web/database.py)

    @property
    def cache_dir(self) -> Path:
        return Path(self.home) / "web-cache"

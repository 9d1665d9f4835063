"""The package ``pgallery.sql``: pyproject.toml maps this directory into pgallery.

It holds no code. The file makes ``sql/`` a regular package so that pgallery finds it
through ``importlib.resources`` in every install: a wheel carries it as ``pgallery/sql/``
(with ``pgallery/alembic/`` beside it), and an editable install maps ``pgallery.sql`` to
this directory of the checkout (setuptools' editable finder resolves a mapped package only
when it has an ``__init__.py``; ``alembic/`` cannot have one, or it would shadow the
``alembic`` library for commands run from the repository root).
"""

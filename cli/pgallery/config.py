"""Settings, resolved once from flags, the environment and a ``.env`` file.

Precedence: command-line flag > environment variable > ``.env`` in the current directory >
default. Nothing here talks to the network or the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

DEFAULT_HOME = ".pgallery"
DEFAULT_API_VERSION = "2024-02-01"
DEFAULT_MODEL_VERSION = "2023-04-15"
DEFAULT_RATE_LIMIT = 10.0  # requests per second: the reference tutorial's advice for S1


def _env(name: str, dotenv: dict[str, str | None]) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        value = dotenv.get(name)
    return value or None


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # None: the embedded PostgreSQL under `home`
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME))
    vision_endpoint: str | None = None
    vision_key: str | None = field(default=None, repr=False)  # never printed
    api_version: str = DEFAULT_API_VERSION
    model_version: str = DEFAULT_MODEL_VERSION
    rate_limit: float = DEFAULT_RATE_LIMIT
    provider: str | None = None  # None: azure when credentials exist, else local
    clip_model_path: str | None = None

    @classmethod
    def load(cls, **overrides) -> "Settings":
        """Resolve settings; keyword overrides (from CLI flags) win when not None."""
        dotenv = dotenv_values(".env") if Path(".env").is_file() else {}
        values = {
            "database_url": _env("DATABASE_URL", dotenv),
            "home": Path(_env("PGALLERY_HOME", dotenv) or DEFAULT_HOME),
            "vision_endpoint": _env("VISION_ENDPOINT", dotenv),
            "vision_key": _env("VISION_KEY", dotenv),
            "api_version": _env("VISION_API_VERSION", dotenv) or DEFAULT_API_VERSION,
            "model_version": _env("VISION_MODEL_VERSION", dotenv) or DEFAULT_MODEL_VERSION,
            "rate_limit": float(_env("VISION_RATE_LIMIT", dotenv) or DEFAULT_RATE_LIMIT),
            "provider": _env("PGALLERY_PROVIDER", dotenv),
            "clip_model_path": _env("PGALLERY_CLIP_MODEL", dotenv),
        }
        for key, value in overrides.items():
            if value is not None:
                values[key] = Path(value) if key == "home" else value
        return cls(**values)

    @property
    def default_provider(self) -> str:
        if self.provider:
            return self.provider
        return "azure" if self.vision_endpoint and self.vision_key else "local"

"""Optional bearer tokens: who may upload and call the JSON API (``--token-file``).

    tokens = read_token_file(Path("tokens.txt"))      # one token a line; # comments
    BearerTokens(app, tokens, private=False)

With tokens, these need ``Authorization: Bearer <token>`` (401 otherwise):

* the JSON API (/api/..., but its description /api/openapi.json and /api/docs),
* every upload (POST, the page's form included),
* with ``private``, the pages and pictures too.

The health checks and the static files never do. A token is compared with every token
of the file in constant time (hmac.compare_digest, and no early exit), so the time of an
answer says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from pgallery.errors import ConfigError
from pgallery.web.limits import refuse

MIN_LENGTH = 16
PUBLIC = ("/healthz", "/readyz", "/static/", "/api/openapi.json", "/api/docs")


def read_token_file(path: Path) -> tuple[str, ...]:
    """The tokens of ``path``: one a line, blank lines and # comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --token-file {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    tokens = tuple(line.strip() for line in text.splitlines()
                   if line.strip() and not line.strip().startswith("#"))
    if not tokens:
        raise ConfigError(f"--token-file {path} holds no token (one a line)")
    short = [n for n, t in enumerate(tokens, 1) if len(t) < MIN_LENGTH or " " in t]
    if short:
        raise ConfigError(f"--token-file {path}: token {short[0]} is shorter than "
                          f"{MIN_LENGTH} characters or has a space; make one with "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return tokens


def needs_token(method: str, path: str, private: bool) -> bool:
    if path.startswith(PUBLIC) or method == "OPTIONS":
        return False
    return private or path.startswith("/api/") or method == "POST"


class BearerTokens:
    def __init__(self, app, tokens: tuple[str, ...], private: bool = False):
        self.app = app
        self.tokens = tuple(t.encode() for t in tokens)
        self.private = private

    def accepts(self, header: bytes | None) -> bool:
        scheme, _, given = (header or b"").partition(b" ")
        if scheme.lower() != b"bearer":
            given = b""
        given = given.strip()
        found = False
        for token in self.tokens:           # every one, whatever the first gave
            found |= hmac.compare_digest(token, given)
        return found and bool(given)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not needs_token(scope["method"], scope["path"],
                                                      self.private):
            return await self.app(scope, receive, send)
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if not self.accepts(header):
            return await refuse(send, 401, "this needs a token: send the header "
                                "'Authorization: Bearer <token>'",
                                {"WWW-Authenticate": 'Bearer realm="pgallery"'})
        await self.app(scope, receive, send)

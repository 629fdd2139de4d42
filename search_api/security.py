"""Optional API key: `Authorization: Bearer <SEMSEARCH_API_KEY>` on every route but the probes."""

from __future__ import annotations

import json
import secrets

from starlette._utils import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

# Liveness/readiness probes, the API docs and the web page's files (which hold no data; the
# page itself sends the key it is given) stay reachable without the key.
OPEN_PATHS = frozenset({"/healthz", "/health", "/readyz", "/docs", "/docs/oauth2-redirect",
                        "/openapi.json", "/redoc", "/"})
OPEN_PREFIXES = ("/static/",)


class ApiKeyMiddleware:
    """401 unless the request carries the key; probes, docs, the page and preflights pass."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._token = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and self._allowed(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # websockets and anything else: no unauthenticated way in
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": {"code": "unauthorized", "message": (
            "missing or wrong API key: send 'Authorization: Bearer <key>' "
            "(the key is the server's SEMSEARCH_API_KEY)")}}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        path = get_route_path(scope)  # without a proxy's root_path prefix
        # OPTIONS: CORS preflights carry no credentials. Open paths are open to reads only:
        # POST / is TEI's embedding route and needs the key.
        if scope["method"] == "OPTIONS" or (scope["method"] in ("GET", "HEAD") and (
                path in OPEN_PATHS or path.startswith(OPEN_PREFIXES))):
            return True
        scheme, _, token = dict(scope.get("headers") or []).get(b"authorization", b"").partition(b" ")
        # The scheme is case-insensitive (RFC 7235); the token is compared in constant time.
        return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self._token)

"""Optional API key: `Authorization: Bearer <SEMSEARCH_API_KEY>` on every route but the probes."""

from __future__ import annotations

import json
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

# Liveness/readiness probes and the API docs stay reachable without the key.
OPEN_PATHS = frozenset({"/healthz", "/health", "/readyz", "/docs", "/docs/oauth2-redirect",
                        "/openapi.json", "/redoc"})


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {"code": "unauthorized", "message": (
            "missing or wrong API key: send 'Authorization: Bearer <key>' "
            "(the key is the server's SEMSEARCH_API_KEY)")}}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        if scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":  # CORS preflights
            return True
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return secrets.compare_digest(given, self._expected)

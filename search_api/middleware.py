"""ASGI middleware: reject request bodies over the configured size before reading them."""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """413 when Content-Length, or the bytes actually streamed, exceed `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and not length.isdigit():
            await self._reject(send, 400, "bad_request", "Content-Length is not a number")
            return
        if length is not None and int(length) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self._message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send, status: int = 413, code: str = "body_too_large",
                      message: str | None = None) -> None:
        error = {"code": code, "message": message or self._message()}
        body_bytes = json.dumps({"error": error}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body_bytes)).encode())]})
        await send({"type": "http.response.body", "body": body_bytes})

    def _message(self) -> str:
        return (f"request body is larger than the limit of {self.max_bytes} bytes "
                "(SEMSEARCH_MAX_BODY_BYTES); send fewer or shorter items per request")


class BodyTooLarge(HTTPException):
    """Raised from `receive`: FastAPI re-raises HTTPExceptions from body reading as they are."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)

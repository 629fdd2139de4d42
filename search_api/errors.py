"""Map domain errors and request problems to one JSON error shape, in one place."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage import SemsearchError
from storage.errors import LimitExceeded

logger = logging.getLogger(__name__)

__all__ = ["EmptyQuery", "EmptyText", "InputTooLong", "InvalidDimensions", "LimitExceeded",
           "ModelNotFound", "UnsupportedInput", "error_response", "register_error_handlers"]

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


class EmptyQuery(SemsearchError):
    code = "empty_query"
    status = 400


class EmptyText(SemsearchError):
    code = "empty_text"
    status = 400


class UnsupportedInput(SemsearchError):
    """An OpenAI request feature this service does not offer (token-id input)."""

    code = "unsupported_input"
    status = 400


class ModelNotFound(SemsearchError):
    """GET /v1/models/{id} of a name this server does not answer (OpenAI's code)."""

    code = "model_not_found"
    status = 404


class InputTooLong(SemsearchError):
    """A text over the model's window where the client asked not to truncate (TEI's shape)."""

    code = "input_too_long"
    status = 413


class InvalidDimensions(SemsearchError):
    code = "invalid_dimensions"
    status = 400


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


async def _semsearch_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SemsearchError)
    if exc.status >= 500:
        logger.error("%s: %s", exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = errors[0].get("ctx", {}).get("error", "")
        return error_response(400, "malformed_json", f"request body is not valid JSON: {detail}")
    if (declared := _undeclared_json(request, errors)) is not None:
        return error_response(415, "unsupported_media_type",
                              f"send the request body as JSON with the header `Content-Type: "
                              f"application/json` (this request had {declared}; curl -d sends "
                              f"a form type unless given -H 'Content-Type: application/json')")
    parts = []
    for error in errors[:5]:
        # "shape:..." parts are the tags of bodies that come in several shapes (/similarity).
        where = ".".join(str(p) for p in error.get("loc", ())
                         if p != "body" and not str(p).startswith("shape:")) or "body"
        if len(where) > 200:  # a location holds client-chosen keys: never echo them unbounded
            where = where[:200] + "..."
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(parts))


def _undeclared_json(request: Request, errors: Sequence[Any]) -> str | None:
    """What the request declared, when its body was refused for not being declared JSON.

    FastAPI parses a body as JSON only under a JSON Content-Type and hands any other body to
    validation as bytes, whose "valid dictionary" error would not say why.
    """
    if not any(tuple(e.get("loc", ())) == ("body",) or isinstance(e.get("input"), bytes)
               for e in errors):
        return None
    declared = request.headers.get("content-type")
    if not declared:
        return "no Content-Type"
    media = declared.split(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return None
    return f"Content-Type '{media if len(media) <= 100 else media[:100] + '...'}'"


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        return _unparsable_body(exc.__cause__)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


def _unparsable_body(cause: BaseException) -> JSONResponse:
    """FastAPI's bare 400 for a body `json.loads` failed on with something other than a
    JSONDecodeError, in the documented codes: the cause says which."""
    if isinstance(cause, RecursionError):
        return error_response(422, "invalid_request",
                              "request body is nested too deeply to parse (metadata may nest "
                              "at most 16 levels)")
    if isinstance(cause, UnicodeDecodeError):
        return error_response(400, "malformed_json", f"request body is not valid JSON: it is not "
                              f"UTF-8 ({cause.reason} at byte {cause.start})")
    return error_response(400, "malformed_json", f"request body is not valid JSON ({cause})")


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "internal error; see the server log")


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SemsearchError, _semsearch_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

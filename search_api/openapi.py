"""/openapi.json that tells the truth: our error body on every 4xx a route can send, the API key's
security scheme, and the content type of non-JSON responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST

from search_api.config import ApiSettings
from search_api.schemas.errors import ErrorResponse
from search_api.security import OPEN_PATHS

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
SCHEME = "ApiKey"
_WHY = {400: "bad input (code and message say what to fix)", 401: "missing or wrong API key",
        404: "not found", 409: "conflicts with the collection (model, lock)",
        413: "body over SEMSEARCH_MAX_BODY_BYTES", 422: "wrong type, missing or unknown field",
        503: "collection unavailable", 507: "storage full"}
# Statuses beyond the generic ones (see `_statuses`), by route: what the services raise there.
_COLLECTION = {400, 404, 409, 503, 507}
_ROUTE_STATUSES: dict[tuple[str, str], set[int]] = {
    ("post", "/collections/{name}/search"): _COLLECTION,
    ("get", "/search"): _COLLECTION,
    ("get", "/collections/{name}"): _COLLECTION,
    ("post", "/collections/{name}/documents"): _COLLECTION,
    ("get", "/collections/{name}/documents/{doc_id}"): _COLLECTION,
    ("delete", "/collections/{name}/documents/{doc_id}"): _COLLECTION,
    ("post", "/faq/{name}/match"): _COLLECTION,
    ("get", "/v1/models/{model_id}"): {404},
}
_TEXT_RESPONSES = {("get", "/metrics"): CONTENT_TYPE_LATEST}


def install_openapi(app: FastAPI, settings: ApiSettings) -> None:
    """Make `app` serve the corrected schema (built once, on first request of /openapi.json).

    Args:
        app: the application, with every router included.
        settings: for whether the API key is required.
    """
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = correct(schema, keyed=bool(
                settings.api_key is not None and settings.api_key.get_secret_value()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def correct(schema: dict[str, Any], *, keyed: bool) -> dict[str, Any]:
    """Declare our errors, the security scheme and text responses in FastAPI's schema.

    Args:
        schema: the schema FastAPI generated.
        keyed: SEMSEARCH_API_KEY is set: every route but the open ones needs it.

    Returns:
        The same schema, corrected in place.
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body: never sent
        schemas.pop(unused, None)
    error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["ErrorResponse"] = error
    components["securitySchemes"] = {SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "Authorization: Bearer <SEMSEARCH_API_KEY>; required only when it is set"}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _correct_operation(method, path, operation, keyed)
    return schema


def _correct_operation(method: str, path: str, operation: dict[str, Any], keyed: bool) -> None:
    responses = operation.setdefault("responses", {})
    for status in sorted(_statuses(method, path, operation, keyed)):
        responses[str(status)] = {"description": _WHY[status],
                                  "content": {"application/json": {"schema": ERROR_REF}}}
    if keyed and not (method == "get" and path in OPEN_PATHS):
        operation["security"] = [{SCHEME: []}]
    media_type = _TEXT_RESPONSES.get((method, path))
    if media_type is not None:
        responses["200"]["content"] = {media_type: {"schema": {"type": "string"}}}


def _statuses(method: str, path: str, operation: dict[str, Any], keyed: bool) -> set[int]:
    """The 4xx statuses (and 503/507 of storage) this route can answer."""
    statuses = set(_ROUTE_STATUSES.get((method, path), set()))
    if "requestBody" in operation:
        statuses |= {400, 413, 422}  # malformed JSON, body limit, validation
    if operation.get("parameters"):
        statuses.add(422)
    if keyed and not (method == "get" and path in OPEN_PATHS):
        statuses.add(401)
    return statuses

"""/openapi.json declares what the server sends: our error body (not FastAPI's {"detail": [...]}),
the API key's scheme and 401s when a key is set, and text responses as text. The fuzz test
(tests/reliability/test_api_fuzz.py) checks every response against it; this one the 401s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from indexer.encoding import Encoder
from search_api.config import ApiSettings
from search_api.main import create_app

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def schema_of(tmp_path: Path, minilm: Encoder, **overrides: Any) -> dict[str, Any]:
    app = create_app(ApiSettings(data_dir=tmp_path, **overrides), encoders={minilm.name: minilm})
    with TestClient(app) as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def test_errors_are_declared_with_our_body(tmp_path: Path, minilm: Encoder) -> None:
    document = schema_of(tmp_path, minilm)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert schemas["ErrorDetail"]["required"] == ["code", "message"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith("4") and (method, path) != ("get", "/readyz"):
                    assert response["content"]["application/json"]["schema"] == ERROR_REF
            assert "security" not in operation  # no key set: nothing asks for one
    search = document["paths"]["/collections/{name}/search"]["post"]["responses"]
    assert {"400", "404", "409", "413", "422"} <= set(search)
    assert "404" in document["paths"]["/v1/models/{model_id}"]["get"]["responses"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert len(metrics) == 1 and next(iter(metrics)).startswith("text/plain")
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_with_a_key_every_401_is_declared_and_conforms(tmp_path: Path, minilm: Encoder) -> None:
    app = create_app(ApiSettings(data_dir=tmp_path, api_key="s3cret"),
                     encoders={minilm.name: minilm})
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        seen = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            keyed = "security" in document["paths"][operation.path][operation.method.lower()]
            seen += keyed
            check_operation(operation, keyed)
    assert seen >= 15
    assert "security" not in document["paths"]["/healthz"]["get"]


def check_operation(operation: Any, keyed: bool) -> None:
    """A few generated requests without the key: 401 where the key is needed, all conforming."""
    @given(case=operation.as_strategy())
    @settings(max_examples=3, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call()
        if keyed:
            assert response.status_code == 401, response.text
        case.validate_response(response, checks=[
            status_code_conformance, content_type_conformance, response_schema_conformance])

    run()


@pytest.mark.parametrize("path", ["/similarity", "/v1/embeddings", "/api/embed"])
def test_a_422_matches_the_declared_body(tmp_path: Path, minilm: Encoder, path: str) -> None:
    app = create_app(ApiSettings(data_dir=tmp_path), encoders={minilm.name: minilm})
    with TestClient(app) as client:
        response = client.post(path, json={"unexpected": 1})
        declared = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert response.status_code == 422 and "422" in declared
    assert set(response.json()) == {"error"} and set(response.json()["error"]) == {"code", "message"}

"""Schema-driven fuzzing: every operation in the OpenAPI document, random valid and invalid
inputs, against the real app and a real MiniLM collection. No input may produce a 5xx, and every
response (4xx included) must have a status, content type and body that /openapi.json declares."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from search_api.config import ApiSettings
from search_api.main import create_app

EXAMPLES_PER_OPERATION = 80
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
calls: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Iterator[Any]:
    from indexer.pipeline import index_documents, open_collection
    from tests.conftest import demo_documents

    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    collection = open_collection(data_dir, "docs", minilm)
    index_documents(collection, minilm, demo_documents())
    collection.close()
    app = create_app(ApiSettings(data_dir=data_dir, default_collection="docs", max_documents=20,
                                 served_model_names="text-embedding-3-small=all-MiniLM-L6-v2"),
                     encoders={minilm.name: minilm})
    with TestClient(app):  # runs the lifespan: models and collections loaded in app.state
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def fuzz_operation(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call()
        calls[(operation.label, response.status_code)] += 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400 and response.status_code != 405:
            body = response.json()
            assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body

    run()


def test_no_input_produces_a_server_error(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        fuzz_operation(operation)
    total = sum(calls.values())
    statuses = Counter(status for _, status in calls.elements())
    print(f"fuzz: {len(operations)} operations, {total} requests, statuses {dict(sorted(statuses.items()))}")
    assert total >= 10 * len(operations)
    assert all(status < 500 for status in statuses)

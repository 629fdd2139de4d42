"""A client generated from /openapi.json (openapi-python-client) against a real server with an API
key: answers and errors (400, 401, 404) come back as typed objects, never `None`.

openapi-python-client is in the test extra (its command sits beside the test's Python);
OPENAPI_PYTHON_CLIENT may point at another install.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search_api.config import ApiSettings
from search_api.main import create_app
from tests.servers import clean_env, running_server

_BESIDE_PYTHON = Path(sys.executable).parent / "openapi-python-client"
GENERATOR = (os.environ.get("OPENAPI_PYTHON_CLIENT")
             or (str(_BESIDE_PYTHON) if _BESIDE_PYTHON.is_file() else None)
             or shutil.which("openapi-python-client"))
KEY = "s3cret"
pytestmark = pytest.mark.skipif(GENERATOR is None, reason="openapi-python-client not installed "
                                "(set OPENAPI_PYTHON_CLIENT to its command)")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the schema of a server with an API key."""
    root = tmp_path_factory.mktemp("generated")
    with TestClient(create_app(ApiSettings(data_dir=root / "data", api_key=KEY))) as client:
        (root / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    assert GENERATOR is not None
    done = subprocess.run([GENERATOR, "generate", "--path", str(root / "openapi.json"),
                           "--output-path", str(root / "semsearch_client"), "--meta", "none"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("semsearch_client")
    finally:
        sys.path.remove(str(root))


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("keyed") / "data"
    data_dir.mkdir()
    with running_server(data_dir, env=clean_env(SEMSEARCH_API_KEY=KEY)) as url:
        yield url


def module(name: str) -> Any:
    return importlib.import_module(f"semsearch_client.{name}")


def test_answers_and_errors_are_typed(generated: ModuleType, base_url: str) -> None:
    client = generated.AuthenticatedClient(base_url=base_url, token=KEY, timeout=60)
    embed = module("api.openai.embeddings_v1_embeddings_post")
    request = module("models.embedding_request").EmbeddingRequest
    error_type = module("models.error_response").ErrorResponse

    ok = embed.sync(client=client, body=request(model="all-MiniLM-L6-v2", input_=["hello"]))
    assert type(ok).__name__ == "EmbeddingResponse" and len(ok.data[0].embedding) == 384

    empty = embed.sync_detailed(client=client, body=request(model="all-MiniLM-L6-v2", input_=""))
    assert empty.status_code == 400 and isinstance(empty.parsed, error_type)
    assert empty.parsed.error.code == "empty_text"

    missing = module("api.openai.model_v1_models_model_id_get").sync("gpt-4o", client=client)
    assert isinstance(missing, error_type) and missing.error.code == "model_not_found"

    anonymous = generated.AuthenticatedClient(base_url=base_url, token="wrong", timeout=60)
    refused = embed.sync_detailed(client=anonymous,
                                  body=request(model="all-MiniLM-L6-v2", input_="x"))
    assert refused.status_code == 401 and refused.parsed.error.code == "unauthorized"


def test_body_shapes_of_one_path(generated: ModuleType, base_url: str) -> None:
    client = generated.AuthenticatedClient(base_url=base_url, token=KEY, timeout=60)
    similarity = module("api.similarity.similarity_similarity_post")
    tei = module("models.tei_similarity_request").TeiSimilarityRequest
    inputs = module("models.tei_similarity_inputs").TeiSimilarityInputs
    pair = module("models.similarity_request").SimilarityRequest
    body = tei(inputs=inputs(source_sentence="a cat sits", sentences=["a cat is sitting", "stocks fell"]))
    scores = similarity.sync(client=client, body=body)
    assert isinstance(scores, list) and scores[0] > scores[1]
    answer = similarity.sync(client=client, body=pair(sentence_a="a cat sits", sentence_b="a cat"))
    assert type(answer).__name__ == "PairSimilarityResponse" and answer.similarity > 0.5

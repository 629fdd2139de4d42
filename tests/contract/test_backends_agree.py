"""FAISS + SQLite and Milvus side by side on the same real MiniLM vectors: same ids, same scores."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from storage import Filter, Hit
from storage.backend import CollectionHandle
from tests.contract.conftest import BACKENDS, DOCS, Corpus, make_backend

FILTERS: list[Filter | None] = [None, {"topic": ["cooking", "tech"]}, {"featured": True},
                                {"year": [2021, 2022]}]


def results(collection: CollectionHandle, corpus: Corpus, filter_: Filter | None,
            k: int) -> list[list[tuple[str, float]]]:
    hits: list[list[Hit]] = collection.search(corpus.query_vectors, k, filter_)
    return [[(hit.doc_id, hit.score) for hit in query_hits] for query_hits in hits]


def test_faiss_and_milvus_return_the_same_hits_and_scores(request: pytest.FixtureRequest,
                                                          tmp_path: Path, corpus: Corpus) -> None:
    name = f"agree-{uuid.uuid4().hex[:8]}"
    answers: dict[str, dict[int, list[list[tuple[str, float]]]]] = {}
    for kind in BACKENDS:
        backend = make_backend(kind, request, tmp_path / kind)
        try:
            collection = backend.open_or_create(name, corpus.model)
            with collection.writer() as writer:
                writer.commit(corpus.documents())
            answers[kind] = {i: results(collection, corpus, f, k)
                             for i, f in enumerate(FILTERS) for k in (1, 3, len(DOCS))}
            collection.close()
        finally:
            backend.close()
    reference = answers["faiss"]
    compared = 0
    for kind in BACKENDS[1:]:
        for key, per_query in answers[kind].items():
            for got, want in zip(per_query, reference[key], strict=True):
                assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in want], (kind, key)
                assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
                compared += len(got)
    print(f"compared {compared} hits of {len(BACKENDS) - 1} Milvus modes against FAISS")
    assert compared > 0

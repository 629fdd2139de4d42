"""A Milvus commit of passages cut short between its requests, then run again: exactly once.

A Milvus commit is several requests (passages, then documents, then the sweep of stale
passages). Each test stops a real milvus-lite commit after one step, as a crash would, checks
that readers still see one consistent version of every document, then reruns the same commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from storage import Chunking, DocumentInput, ModelInfo
from storage.backend import Backend
from storage.factory import open_backend
from storage.milvus.passages import MilvusPassages
from storage.milvus.store import MilvusCollection
from storage.records import PassageInput, PassageSpan

DIM = 16
MODEL = ModelInfo(name="fake", dimension=DIM, max_length=64)


class Crash(Exception):
    """Stands for the process dying between two Milvus requests."""


def document(doc_id: str, sentences: int, seed: int) -> DocumentInput:
    """A document of `sentences` sentences, one passage each, with random unit vectors."""
    rng = np.random.default_rng(seed)
    parts = [f"{doc_id} version {seed} sentence {i}." for i in range(sentences)]
    passages, start = [], 0
    for i, part in enumerate(parts):
        vector = rng.standard_normal(DIM).astype(np.float32)
        passages.append(PassageInput(span=PassageSpan(index=i, start=start, end=start + len(part)),
                                     vector=vector / np.linalg.norm(vector)))
        start += len(part) + 1
    return DocumentInput(doc_id=doc_id, text=" ".join(parts), passages=tuple(passages))


@pytest.fixture
def milvus(milvus_lite_uri: str, tmp_path: Path) -> Iterator[Backend]:
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    yield backend
    backend.close()


def commit(collection: MilvusCollection, upserts: list[DocumentInput],
           deletes: list[str] | None = None) -> None:
    with collection.writer() as writer:
        writer.commit(upserts, deletes or [])


def served_texts(collection: MilvusCollection, doc: DocumentInput) -> set[str]:
    """What dense search answers for each passage vector of `doc`: the passage texts shown."""
    assert doc.passages is not None
    vectors = np.stack([p.vector for p in doc.passages])
    found = set()
    for hits in collection.search(vectors, 3):
        for hit in hits:
            if hit.doc_id == doc.doc_id:
                assert hit.passage is not None
                found.add(hit.text[hit.passage.start:hit.passage.end])
    return found


# The step that does not happen: writing the documents, the sweep, the catalog row.
@pytest.mark.parametrize("step", ["_write_documents", "sweep", "_new_generation"])
def test_a_commit_cut_short_serves_one_version_and_a_rerun_completes_it(
        milvus: Backend, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    collection = milvus.open_or_create(f"r-{uuid.uuid4().hex[:8]}", MODEL, Chunking(tokens=32, overlap=8))
    assert isinstance(collection, MilvusCollection)
    old, other = document("a", 10, seed=1), document("b", 3, seed=2)
    commit(collection, [old, other])
    new = document("a", 2, seed=3)

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash(step)

    target = MilvusPassages if step == "sweep" else MilvusCollection
    with monkeypatch.context() as patch:
        patch.setattr(target, step, crash)
        with pytest.raises(Crash):
            commit(collection, [new, other], deletes=["b"])
    # Readers see one version of "a": its old text until the documents were written.
    shown = served_texts(collection, old) | served_texts(collection, new)
    expected = old if step == "_write_documents" else new
    assert shown and shown <= {expected.text[p.span.start:p.span.end] for p in expected.passages or ()}
    assert collection.get("a").text == expected.text
    assert not milvus.check(collection.name).ok  # stale passages, or a stale count

    commit(collection, [new, other], deletes=["b"])  # the same job, run again
    collection.refresh()
    assert (collection.count, collection.passage_count) == (1, 2)
    assert milvus.check(collection.name).ok
    assert served_texts(collection, new) == {new.text[p.span.start:p.span.end]
                                             for p in new.passages or ()}
    collection.close()


def older_documents_schema() -> object:
    """The documents schema of chunked collections made before it had BM25 terms of its own."""
    from pymilvus import DataType, MilvusClient

    from storage.milvus import schema
    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=schema.MAX_ID_BYTES)
    fields.add_field("text", DataType.VARCHAR, max_length=schema.MAX_TEXT_BYTES)
    fields.add_field("content_hash", DataType.VARCHAR, max_length=64)
    fields.add_field("metadata", DataType.JSON)
    fields.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
    return fields


def test_an_older_chunked_collection_still_ranks_lexically_by_passage(
        milvus: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.milvus import passages, schema
    with monkeypatch.context() as patch:  # created as the previous release created them
        patch.setattr(passages, "documents_schema", older_documents_schema)
        patch.setattr(passages, "documents_index", schema.placeholder_index)
        collection = milvus.open_or_create(f"o-{uuid.uuid4().hex[:8]}", MODEL,
                                           Chunking(tokens=32, overlap=8))
    assert isinstance(collection, MilvusCollection)
    docs = [document(doc_id, 4, seed) for seed, doc_id in enumerate(["a", "b", "c"])]
    commit(collection, docs)
    hits = collection.lexical_search(["b sentence 2"], 2)[0]
    assert hits[0].doc_id == "b" and hits[0].passage is not None
    assert hits[0].text[hits[0].passage.start:hits[0].passage.end] == "b version 1 sentence 2."
    assert collection.lexical_coverage(["b sentence nowhere"]) == [pytest.approx(2 / 3)]
    assert milvus.check(collection.name).ok

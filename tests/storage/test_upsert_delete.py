"""Tests for committing upserts and deletes: what changes, what does not, and row ids."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from storage import Collection, DocumentInput, DocumentNotFound
from tests.storage.helpers import DIM, commit, hit_ids, make_docs, make_vectors, snapshot


def test_add_documents(collection: Collection) -> None:
    vectors = make_vectors(3)

    stats = commit(collection, make_docs(vectors, metadata=lambda i: {"n": i}))

    assert (stats.added, stats.updated, stats.unchanged, stats.deleted) == (3, 0, 0, 0)
    assert stats.missing == []
    assert stats.changed
    assert stats.generation == 1
    assert collection.generation == 1
    assert collection.count == 3
    stored = collection.get("doc-1")
    assert (stored.doc_id, stored.text, stored.metadata) == ("doc-1", "text doc-1", {"n": 1})
    hits = collection.search(vectors[1:2], 1)[0]
    assert hit_ids(hits) == ["doc-1"]
    assert hits[0].text == "text doc-1"
    assert hits[0].metadata == {"n": 1}
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_same_text_and_metadata_is_unchanged_and_keeps_generation(collection: Collection) -> None:
    vectors = make_vectors(3)
    commit(collection, make_docs(vectors, metadata=lambda i: {"n": i}))
    before = snapshot(collection, vectors)

    # Same content again, once with vectors and once without: nothing to do either way.
    stats = commit(collection, make_docs(vectors, metadata=lambda i: {"n": i}))
    stats_no_vector = commit(collection, [DocumentInput(doc_id="doc-0", text="text doc-0",
                                                         metadata={"n": 0})])

    for s in (stats, stats_no_vector):
        assert (s.added, s.updated, s.deleted) == (0, 0, 0)
        assert not s.changed
        assert s.generation == 1
    assert stats.unchanged == 3
    assert stats_no_vector.unchanged == 1
    assert collection.generation == 1
    assert collection.count == 3
    assert snapshot(collection, vectors) == before


def test_metadata_key_order_does_not_count_as_a_change(collection: Collection) -> None:
    vector = make_vectors(1)[0]
    commit(collection, [DocumentInput(doc_id="a", text="t", metadata={"x": 1, "y": 2}, vector=vector)])

    stats = commit(collection, [DocumentInput(doc_id="a", text="t", metadata={"y": 2, "x": 1})])

    assert stats.unchanged == 1
    assert collection.generation == 1


def test_metadata_only_change_updates_without_a_vector(collection: Collection) -> None:
    vectors = make_vectors(3)
    commit(collection, make_docs(vectors, metadata=lambda i: {"topic": "old"}))
    rowid = collection.get("doc-2").rowid

    stats = commit(collection, [DocumentInput(doc_id="doc-2", text="text doc-2",
                                              metadata={"topic": "new", "lang": "en"}, vector=None)])

    assert (stats.added, stats.updated, stats.unchanged) == (0, 1, 0)
    assert stats.generation == 2
    assert collection.generation == 2
    assert collection.count == 3
    stored = collection.get("doc-2")
    assert stored.metadata == {"topic": "new", "lang": "en"}
    assert stored.rowid == rowid
    hit = collection.search(vectors[2:3], 1)[0][0]
    assert (hit.doc_id, hit.metadata) == ("doc-2", {"topic": "new", "lang": "en"})
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    # The new field is filterable at once.
    assert hit_ids(collection.search(vectors[2:3], 3, {"lang": "en"})[0]) == ["doc-2"]


def test_text_change_replaces_vector_and_keeps_rowid(collection: Collection) -> None:
    vectors = make_vectors(4, seed=1)
    commit(collection, make_docs(vectors[:3]))
    rowid = collection.get("doc-0").rowid
    old_vector, new_vector = vectors[0], vectors[3]

    stats = commit(collection, [DocumentInput(doc_id="doc-0", text="rewritten", metadata={"v": 2},
                                              vector=new_vector)])

    assert (stats.added, stats.updated, stats.unchanged) == (0, 1, 0)
    assert collection.count == 3
    stored = collection.get("doc-0")
    assert (stored.rowid, stored.text, stored.metadata) == (rowid, "rewritten", {"v": 2})
    top = collection.search(new_vector[None, :], 1)[0][0]
    assert (top.doc_id, top.text) == ("doc-0", "rewritten")
    assert top.score == pytest.approx(1.0, abs=1e-5)
    # The old vector is gone from the index: doc-0 now scores new·old against it.
    by_old = {hit.doc_id: hit.score for hit in collection.search(old_vector[None, :], 3)[0]}
    assert by_old["doc-0"] == pytest.approx(float(new_vector @ old_vector), abs=1e-5)


def test_text_change_without_vector_raises_and_changes_nothing(collection: Collection) -> None:
    vectors = make_vectors(2)
    commit(collection, make_docs(vectors))

    with pytest.raises(ValueError, match="'doc-0' is new or changed but has no vector"):
        commit(collection, [DocumentInput(doc_id="doc-0", text="changed")])

    assert collection.get("doc-0").text == "text doc-0"
    assert collection.generation == 1


def test_new_document_without_vector_raises(collection: Collection) -> None:
    with pytest.raises(ValueError, match="'fresh' is new or changed"):
        commit(collection, [DocumentInput(doc_id="fresh", text="hello")])

    assert collection.count == 0
    with pytest.raises(DocumentNotFound):
        collection.get("fresh")


def test_repeated_id_in_one_commit_keeps_the_last(collection: Collection) -> None:
    vectors = make_vectors(2, seed=2)

    stats = commit(collection, [
        DocumentInput(doc_id="x", text="first", metadata={"v": 1}, vector=vectors[0]),
        DocumentInput(doc_id="x", text="last", metadata={"v": 2}, vector=vectors[1]),
    ])

    assert stats.added == 1
    assert collection.count == 1
    stored = collection.get("x")
    assert (stored.text, stored.metadata) == ("last", {"v": 2})
    hit = collection.search(vectors[1:2], 5)[0]
    assert [(h.doc_id, h.text) for h in hit] == [("x", "last")]
    assert hit[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("bad_dimension", [DIM - 1, DIM + 1])
def test_wrong_vector_dimension_raises_and_leaves_collection_unchanged(
        collection: Collection, reopen: Callable[..., Collection], bad_dimension: int) -> None:
    vectors = make_vectors(5)
    commit(collection, make_docs(vectors))
    before = snapshot(collection, vectors)
    bad = make_vectors(1, d=bad_dimension, seed=9)[0]
    # A valid new doc and a valid update come first in the same commit: both must be undone.
    batch = [*make_docs(make_vectors(1, seed=8), prefix="new"),
             DocumentInput(doc_id="doc-0", text="changed", vector=vectors[1]),
             DocumentInput(doc_id="bad", text="bad", vector=bad)]

    with pytest.raises(ValueError, match=rf"'bad' has shape \({bad_dimension},\).*expects \({DIM},\)"):
        commit(collection, batch)

    for handle in (collection, reopen()):
        assert handle.count == 5
        assert handle.generation == 1
        assert snapshot(handle, vectors) == before
        assert handle.get("doc-0").text == "text doc-0"
        with pytest.raises(DocumentNotFound):
            handle.get("new-0")


def test_collection_still_commits_after_a_rejected_commit(collection: Collection) -> None:
    vectors = make_vectors(3)
    commit(collection, make_docs(vectors[:1]))
    with pytest.raises(ValueError):
        commit(collection, [DocumentInput(doc_id="bad", text="bad", vector=np.zeros(3, np.float32))])

    stats = commit(collection, make_docs(vectors[1:], start=1))

    assert stats.added == 2
    assert stats.generation == 2
    assert collection.count == 3


def test_delete_removes_from_search_and_get(collection: Collection) -> None:
    vectors = make_vectors(5)
    commit(collection, make_docs(vectors))

    stats = commit(collection, deletes=["doc-1", "doc-3"])

    assert (stats.deleted, stats.added, stats.updated) == (2, 0, 0)
    assert stats.generation == 2
    assert collection.count == 3
    for doc_id in ("doc-1", "doc-3"):
        with pytest.raises(DocumentNotFound, match=f"'{doc_id}' not found in collection 'c'"):
            collection.get(doc_id)
    for hits in collection.search(vectors, 10):
        assert sorted(hit_ids(hits)) == ["doc-0", "doc-2", "doc-4"]


def test_delete_reports_missing_ids(collection: Collection) -> None:
    commit(collection, make_docs(make_vectors(2)))

    stats = commit(collection, deletes=["doc-0", "ghost", "doc-0", "phantom"])

    assert stats.deleted == 1
    assert stats.missing == ["ghost", "phantom"]
    assert collection.count == 1


def test_delete_of_only_missing_ids_keeps_generation(collection: Collection) -> None:
    commit(collection, make_docs(make_vectors(2)))

    stats = commit(collection, deletes=["ghost"])

    assert stats.missing == ["ghost"]
    assert not stats.changed
    assert collection.generation == 1


def test_row_ids_are_never_reused_after_delete(collection: Collection) -> None:
    vectors = make_vectors(4)
    commit(collection, make_docs(vectors[:3]))
    last = collection.get("doc-2").rowid
    assert last == max(collection.get(f"doc-{i}").rowid for i in range(3))
    commit(collection, deletes=["doc-2"])

    commit(collection, make_docs(vectors[3:], prefix="fresh"))

    fresh = collection.get("fresh-0").rowid
    assert fresh > last
    hit = collection.search(vectors[3:], 1)[0][0]
    assert (hit.doc_id, hit.text) == ("fresh-0", "text fresh-0")


def test_delete_then_readd_same_id_gets_new_rowid(collection: Collection) -> None:
    vectors = make_vectors(2)
    commit(collection, make_docs(vectors[:1]))
    old = collection.get("doc-0").rowid
    commit(collection, deletes=["doc-0"])

    commit(collection, make_docs(vectors[1:]))

    assert collection.get("doc-0").rowid > old
    assert hit_ids(collection.search(vectors, 5)[1]) == ["doc-0"]


def test_update_and_delete_of_same_id_in_one_commit_stay_consistent(
        collection: Collection, reopen: Callable[..., Collection]) -> None:
    vectors = make_vectors(4)
    commit(collection, make_docs(vectors[:3]))

    commit(collection, [DocumentInput(doc_id="doc-1", text="changed", vector=vectors[3])], ["doc-1"])

    on_disk = reopen()
    assert collection.count == on_disk.count
    assert snapshot(collection, vectors) == snapshot(on_disk, vectors)


def test_add_and_delete_of_same_new_id_in_one_commit_deletes_it(collection: Collection) -> None:
    stats = commit(collection, make_docs(make_vectors(1), prefix="n"), ["n-0"])

    assert stats.missing == []
    with pytest.raises(DocumentNotFound):
        collection.get("n-0")


@pytest.mark.parametrize("kind", ["unnormalised", "matrix", "nan"])
def test_vectors_must_be_unit_length_1d_and_finite(collection: Collection, kind: str) -> None:
    vector = make_vectors(1)[0]
    bad = {"unnormalised": vector * 3, "matrix": vector.reshape(2, -1),
           "nan": np.full_like(vector, np.nan)}[kind]
    with pytest.raises(ValueError, match="'bad'"):
        commit(collection, [DocumentInput(doc_id="bad", text="t", vector=bad)])
    assert (collection.count, collection.generation) == (0, 0)

"""Tests for what survives on disk: reopening, rebuilding lost indexes and the commit point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import storage.faiss.metadata
from storage import Collection, DocumentInput, DocumentNotFound, read_manifest
from storage.faiss.vector_index import FaissIndex
from tests.storage.helpers import DIM, commit, faiss_index, make_docs, make_vectors, snapshot


def _index_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("index-*"))


@pytest.fixture
def filled(collection: Collection) -> tuple[Collection, np.ndarray]:
    """Three commits: 30 docs added, 5 rewritten, 5 deleted (generation 3, 25 docs)."""
    vectors = make_vectors(40, seed=5)
    commit(collection, make_docs(vectors[:30], metadata=lambda i: {"even": i % 2 == 0}))
    commit(collection, [DocumentInput(doc_id=f"doc-{i}", text=f"v2 {i}", metadata={"even": i % 2 == 0},
                                      vector=vectors[30 + i]) for i in range(5)])
    commit(collection, deletes=[f"doc-{i}" for i in range(25, 30)])
    return collection, make_vectors(8, seed=6)


def test_reopen_gives_identical_results_and_generation(
        filled: tuple[Collection, np.ndarray], reopen: Callable[..., Collection]) -> None:
    collection, queries = filled

    reopened = reopen()

    assert reopened.generation == collection.generation == 3
    assert reopened.count == collection.count == 25
    assert snapshot(reopened, queries, 10) == snapshot(collection, queries, 10)
    assert reopened.search(queries, 3, {"even": True}) == collection.search(queries, 3, {"even": True})
    assert reopened.get("doc-1") == collection.get("doc-1")
    assert reopened.get("doc-1").text == "v2 1"


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.unlink(),
        lambda path: path.write_bytes(b"not a faiss index" * 20),
        lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
        lambda path: path.write_bytes(b""),
        lambda path: FaissIndex.create(DIM).save(path),
        lambda path: faiss_index(DIM * 2, np.arange(25, dtype=np.int64),
                                             make_vectors(25, d=DIM * 2)).save(path),
    ],
    ids=["missing", "garbage", "truncated", "zero-bytes", "empty-index", "wrong-dimension"],
)
def test_damaged_index_file_is_rebuilt_from_sqlite(
        filled: tuple[Collection, np.ndarray], reopen: Callable[..., Collection],
        damage: Callable[[Path], None]) -> None:
    collection, queries = filled
    expected = snapshot(collection, queries, 10)
    damage(collection.folder / "index-3.faiss")

    reopened = reopen()

    assert reopened.generation == 3
    assert reopened.count == 25
    assert snapshot(reopened, queries, 10) == expected


def test_rebuilt_collection_accepts_further_commits(
        filled: tuple[Collection, np.ndarray], reopen: Callable[..., Collection]) -> None:
    collection, queries = filled
    (collection.folder / "index-3.faiss").unlink()
    reopened = reopen()

    stats = commit(reopened, make_docs(make_vectors(2, seed=99), prefix="late"))

    assert stats.generation == 4
    assert (reopened.folder / "index-4.faiss").exists()
    assert reopen().count == 27
    assert snapshot(reopen(), queries, 10) == snapshot(reopened, queries, 10)


def test_orphan_index_of_next_generation_is_ignored(
        filled: tuple[Collection, np.ndarray], reopen: Callable[..., Collection]) -> None:
    collection, queries = filled
    expected = snapshot(collection, queries, 10)
    # What a writer that crashed between writing index-4 and COMMIT leaves: a full-size index
    # for generation 4 whose vectors the database never committed.
    bogus = faiss_index(DIM, np.arange(1, 26, dtype=np.int64), make_vectors(25, seed=1234))
    bogus.save(collection.folder / "index-4.faiss")

    reopened = reopen()

    assert reopened.generation == 3
    assert snapshot(reopened, queries, 10) == expected
    # The next real commit takes generation 4 and overwrites the orphan.
    extra = make_vectors(1, seed=77)
    commit(reopened, make_docs(extra, prefix="after"))
    assert reopened.generation == 4
    after = reopen()
    assert after.generation == 4
    assert after.count == 26
    assert snapshot(after, queries, 10) == snapshot(reopened, queries, 10)
    assert after.search(extra, 1)[0][0].doc_id == "after-0"


def test_manifest_tracks_count_and_generation(collection: Collection) -> None:
    vectors = make_vectors(6)
    for generation, (upserts, deletes, count) in enumerate(
        [(make_docs(vectors[:4]), [], 4), (make_docs(vectors[4:], start=4), ["doc-0"], 5),
         ([], ["doc-1", "doc-2"], 3)], start=1):
        commit(collection, upserts, deletes)

        manifest = read_manifest(collection.folder)
        assert manifest is not None
        assert (manifest.count, manifest.generation) == (count, generation)
        assert manifest.index_file == f"index-{generation}.faiss"
        assert manifest.created_at == collection.created_at
        assert manifest.updated_at >= manifest.created_at
        assert manifest == collection.manifest()


def test_unchanged_commit_does_not_rewrite_manifest(collection: Collection) -> None:
    docs = make_docs(make_vectors(2))
    commit(collection, docs)
    before = (collection.folder / "manifest.json").read_bytes()

    commit(collection, docs)

    assert (collection.folder / "manifest.json").read_bytes() == before
    assert _index_files(collection.folder) == ["index-0.faiss", "index-1.faiss"]


def test_index_files_older_than_previous_generation_are_removed(collection: Collection) -> None:
    vectors = make_vectors(5)
    assert _index_files(collection.folder) == ["index-0.faiss"]

    seen = []
    for i in range(5):
        commit(collection, make_docs(vectors[i : i + 1], start=i))
        seen.append(_index_files(collection.folder))

    assert seen == [
        ["index-0.faiss", "index-1.faiss"],
        ["index-1.faiss", "index-2.faiss"],
        ["index-2.faiss", "index-3.faiss"],
        ["index-3.faiss", "index-4.faiss"],
        ["index-4.faiss", "index-5.faiss"],
    ]
    assert not list(collection.folder.glob("*.tmp"))


def test_failure_at_the_commit_point_keeps_previous_generation(
        filled: tuple[Collection, np.ndarray], reopen: Callable[..., Collection],
        monkeypatch: pytest.MonkeyPatch) -> None:
    collection, queries = filled
    expected = snapshot(collection, queries, 10)
    real_commit = storage.faiss.metadata.MetadataStore.commit
    calls: list[int] = []

    def failing_once(self: storage.faiss.metadata.MetadataStore) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full at COMMIT")
        real_commit(self)

    # Fault injection at step 3 of the protocol: the real SQLite transaction is rolled back.
    monkeypatch.setattr(storage.faiss.metadata.MetadataStore, "commit", failing_once)
    new_vectors = make_vectors(3, seed=8)
    batch = [*make_docs(new_vectors[:2], prefix="new"),
             DocumentInput(doc_id="doc-10", text="changed", vector=new_vectors[2])]

    with pytest.raises(RuntimeError, match="disk full"):
        commit(collection, batch, deletes=["doc-11"])

    assert len(calls) == 1
    # The index for generation 4 was written before the commit point: the failed commit removes it.
    assert not (collection.folder / "index-4.faiss").exists()
    assert not list(collection.folder.glob("*.tmp"))
    for handle in (collection, reopen()):
        assert handle.generation == 3
        assert handle.count == 25
        assert snapshot(handle, queries, 10) == expected
        assert handle.get("doc-10").text == "text doc-10"
        assert handle.get("doc-11").doc_id == "doc-11"
        with pytest.raises(DocumentNotFound):
            handle.get("new-0")
    assert read_manifest(collection.folder).generation == 3  # type: ignore[union-attr]

    # The same batch goes through on retry, as generation 4.
    stats = commit(collection, batch, deletes=["doc-11"])
    assert (stats.added, stats.updated, stats.deleted, stats.generation) == (2, 1, 1, 4)
    assert reopen().count == collection.count == 26
    assert snapshot(reopen(), queries, 10) == snapshot(collection, queries, 10)

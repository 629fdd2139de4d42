"""A fault at any operation of a commit leaves the old or the new generation, never a mix; reruns complete."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import (
    Collection,
    DocumentInput,
    DocumentNotFound,
    StorageFull,
    StorageIOError,
    check_collection,
)
from tests.storage.faults import FAULTS, FaultPlan, injected
from tests.storage.helpers import MODEL, commit, make_docs, make_vectors, snapshot

ROOT = Path(__file__).resolve().parents[2]
CRASH_SCRIPT = Path(__file__).with_name("crash_commit.py")
QUERIES = make_vectors(6, seed=11)
State = tuple[int, int, list[tuple[str, str]], list[list[tuple[str, float]]]]


def batch() -> tuple[list[DocumentInput], list[str]]:
    """One commit that adds, replaces and deletes: every kind of row change and an index update."""
    vectors = make_vectors(4, seed=12)
    upserts = [*make_docs(vectors[:3], prefix="new"),
               DocumentInput(doc_id="doc-2", text="rewritten", vector=vectors[3])]
    return upserts, ["doc-5"]


def state(collection: Collection) -> State:
    """Generation, count, every document's text and search results: what a reader can see."""
    ids = [f"doc-{i}" for i in range(12)] + [f"new-{i}" for i in range(3)]
    texts = []
    for doc_id in ids:
        try:
            texts.append((doc_id, collection.get(doc_id).text))
        except DocumentNotFound:
            pass
    return collection.generation, collection.count, texts, snapshot(collection, QUERIES, 5)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, State, State]]:
    """A closed collection at generation 2, and the states before and after `batch()` commits."""
    root = tmp_path_factory.mktemp("base")
    collection = Collection.create(root / "data", "c", MODEL)
    commit(collection, make_docs(make_vectors(8, seed=1)))
    commit(collection, make_docs(make_vectors(4, seed=2), start=8))
    before = state(collection)
    collection.close()
    reference = Collection.open(_copy(root / "data", root / "ref"), "c")
    commit(reference, *batch())
    after = state(reference)
    reference.close()
    assert before[0] == 2 and after[0] == 3 and before != after
    yield root / "data", before, after


def _copy(data: Path, to: Path) -> Path:
    shutil.copytree(data, to)
    return to


def _assert_consistent(data: Path, before: State, after: State, handle: Collection) -> None:
    """The failed handle and a fresh one each show one whole generation, and `check` agrees."""
    for collection in (handle, Collection.open(data, "c")):
        seen = state(collection)
        assert seen in (before, after), f"in between: generation {seen[0]}"
        if collection is not handle:
            collection.close()
    folder = data / "c"
    report = check_collection(data, "c")
    assert report.ok, report.errors
    assert not list(folder.glob("*.tmp"))
    if report.generation == before[0]:
        assert not (folder / f"index-{after[0]}.faiss").exists()


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_at_every_operation_of_a_commit(base: tuple[Path, State, State], tmp_path: Path,
                                              fault: str) -> None:
    source, before, after = base
    at, seen_ops = 0, []
    while True:
        at += 1
        data = _copy(source, tmp_path / f"{fault}-{at}")
        collection = Collection.open(data, "c")
        with collection.writer() as writer, injected(FaultPlan(at, fault)) as plan:
            try:
                writer.commit(*batch())
                error: Exception | None = None
            except (StorageFull, StorageIOError) as exc:
                error = exc
        if plan.fired is None:  # past the last operation: the whole commit ran
            assert state(collection) == after
            collection.close()
            break
        seen_ops = plan.ops
        if error is not None:
            assert "\n" not in error.message and "run it again" in error.message
            expected = StorageIOError if fault == "eio" else StorageFull
            # A fault after an operation took effect may be reported either way.
            assert isinstance(error, expected) or fault == "after"
        _assert_consistent(data, before, after, collection)
        commit(collection, *batch())  # the rerun completes
        assert state(collection) == after
        collection.close()
    # The operations of a commit, each failed in turn: SQLite rows, index file, COMMIT, manifest.
    for op in ("insert", "update", "delete", "write_index", "fsync", "replace", "commit",
               "write_bytes"):
        assert op in seen_ops


def _operations(source: Path, tmp_path: Path) -> list[str]:
    """The counted operations of `batch()`'s commit, in order (a dry run with no fault)."""
    collection = Collection.open(_copy(source, tmp_path / "dry-run"), "c")
    with collection.writer() as writer, injected(FaultPlan(0, "eio")) as plan:
        writer.commit(*batch())
    collection.close()
    return plan.ops


def _crash_at(points: list[tuple[int, str]], source: Path, before: State, after: State,
              tmp_path: Path) -> set[int]:
    """Kill a committing process at each (operation number, before|after); check and rerun."""
    generations = set()
    for at, when in points:
        data = _copy(source, tmp_path / f"{when}-{at}")
        result = subprocess.run(
            [sys.executable, str(CRASH_SCRIPT), str(data), str(at), when],
            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 17, result.stderr  # it died where it was told to
        collection = Collection.open(data, "c")
        generations.add(collection.generation)
        _assert_no_mix(data, before, after, collection)
        commit(collection, *batch())
        assert state(collection) == after
        collection.close()
    return generations


def test_crash_at_each_kind_of_commit_operation(base: tuple[Path, State, State],
                                                tmp_path: Path) -> None:
    """A process killed (os._exit) at the first operation of each kind, and after the last one."""
    source, before, after = base
    ops = _operations(source, tmp_path)
    firsts = sorted({ops.index(op) + 1 for op in ops})
    points = [(at, "before") for at in firsts] + [(len(ops), "after")]
    generations = _crash_at(points, source, before, after, tmp_path)
    assert generations == {before[0], after[0]}  # crashes landed on both sides of the commit point


@pytest.mark.slow
def test_crash_at_every_operation_of_a_commit(base: tuple[Path, State, State],
                                              tmp_path: Path) -> None:
    """Every operation, before and after it takes effect (about 40 processes: marked slow)."""
    source, before, after = base
    count = len(_operations(source, tmp_path))
    points = [(at, when) for at in range(1, count + 1) for when in ("before", "after")]
    assert _crash_at(points, source, before, after, tmp_path) == {before[0], after[0]}


def _assert_no_mix(data: Path, before: State, after: State, collection: Collection) -> None:
    assert state(collection) in (before, after)
    # A killed writer may leave a temp file or an uncommitted index; the next writer sweeps them.
    with collection.writer():
        pass
    assert not list((data / "c").glob("*.tmp"))
    assert check_collection(data, "c").ok


def test_real_sqlite_full_at_commit(base: tuple[Path, State, State], tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL (max_page_count reached), not an injected one."""
    source, before, after = base
    data = _copy(source, tmp_path / "full")
    collection = Collection.open(data, "c")
    with collection.writer() as writer:
        pages = writer._store.conn.execute("PRAGMA page_count").fetchone()[0]
        writer._store.conn.execute(f"PRAGMA max_page_count = {pages}")
        big = [DocumentInput(doc_id=f"big-{i}", text="x" * 4000, vector=v)
               for i, v in enumerate(make_vectors(40, seed=3))]
        with pytest.raises(StorageFull, match=r"generation 3 of collection 'c'.*free\)"):
            writer.commit(big)
        writer._store.conn.execute("PRAGMA max_page_count = 1073741823")
    _assert_consistent(data, before, after, collection)
    commit(collection, *batch())
    assert state(collection) == after
    collection.close()


def test_enospc_message_names_what_and_where(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path, "c", MODEL)
    with collection.writer() as writer, injected(FaultPlan(1, "enospc")):
        with pytest.raises(StorageFull) as caught:
            writer.commit(make_docs(make_vectors(1)))
    message = caught.value.message
    assert message.startswith(f"cannot write generation 1 of collection 'c' in {tmp_path / 'c'}: ")
    assert "No space left on device" in message or "disk is full" in message
    assert " free); free disk space and run it again" in message
    assert caught.value.status == 507
    collection.close()


def test_old_collection_without_checksum_still_opens(tmp_path: Path) -> None:
    """Collections committed before checksums existed open as before and get one at their next commit."""
    collection = Collection.create(tmp_path, "c", MODEL)
    commit(collection, make_docs(make_vectors(5)))
    collection.close()
    with sqlite3.connect(tmp_path / "c" / "metadata.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'index_checksum'")
    conn.close()
    reopened = Collection.open(tmp_path, "c")
    assert reopened.count == 5 and reopened.rebuilds == 0
    commit(reopened, make_docs(make_vectors(1, seed=9), prefix="late"))
    with sqlite3.connect(tmp_path / "c" / "metadata.db") as conn:
        recorded = conn.execute("SELECT value FROM meta WHERE key = 'index_checksum'").fetchone()
    conn.close()
    assert recorded[0].startswith("2:crc32:")
    reopened.close()

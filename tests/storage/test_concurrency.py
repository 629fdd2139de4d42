"""Tests for several handles and threads: refresh, the writer lock, the readers-writer lock."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import Collection, CollectionLocked, DocumentInput, Hit, SemsearchError
from storage.locks import ReadWriteLock
from tests.storage.helpers import commit, hit_ids, make_docs, make_vectors, snapshot

# Every wait in this file is bounded, so a broken lock fails the test instead of hanging it.
WAIT = 5.0


def _start(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_commit_through_one_handle_is_seen_by_another(
        collection: Collection, reopen: Callable[..., Collection]) -> None:
    vectors = make_vectors(4)
    commit(collection, make_docs(vectors[:2]))
    other = reopen()
    assert other.generation == 1

    commit(collection, make_docs(vectors[2:], start=2), deletes=["doc-0"])

    assert other.generation == 1  # nothing changes until the handle looks
    assert other.refresh() is True
    assert other.refresh() is False
    assert other.generation == 2
    assert other.count == 3
    assert snapshot(other, vectors) == snapshot(collection, vectors)


def test_search_refreshes_the_other_handle_by_itself(
        collection: Collection, reopen: Callable[..., Collection]) -> None:
    vectors = make_vectors(3)
    other = reopen()
    assert other.search(vectors, 3) == [[], [], []]

    commit(collection, make_docs(vectors))

    assert [hit_ids(hits)[0] for hits in other.search(vectors, 3)] == ["doc-0", "doc-1", "doc-2"]
    assert other.generation == 1
    assert other.refresh() is False


def test_writer_of_other_handle_starts_from_latest_generation(
        collection: Collection, reopen: Callable[..., Collection]) -> None:
    vectors = make_vectors(3)
    other = reopen()
    commit(collection, make_docs(vectors[:2]))

    stats = commit(other, make_docs(vectors[2:], start=2), deletes=["doc-0"])

    assert stats.generation == 2
    assert stats.deleted == 1
    assert other.count == 2
    assert collection.refresh() is True
    assert snapshot(collection, vectors) == snapshot(other, vectors)


def test_second_handle_cannot_write_while_first_holds_the_lock(
        collection: Collection, reopen: Callable[..., Collection]) -> None:
    other = reopen()
    vectors = make_vectors(2)

    with collection.writer() as writer:
        started = time.monotonic()
        with pytest.raises(CollectionLocked) as info:
            with other.writer(timeout=0.2):
                pass
        waited = time.monotonic() - started
        writer.commit(make_docs(vectors[:1]))

    assert 0.2 <= waited < WAIT
    assert info.value.message.startswith("collection 'c' is being written by another process")
    assert f"(pid {os.getpid()})" in info.value.message
    # Released: the other handle writes now, on top of the first one's commit.
    stats = commit(other, make_docs(vectors[1:], start=1))
    assert stats.generation == 2
    assert other.count == 2


def test_writer_waits_for_lock_within_timeout(
        collection: Collection, reopen: Callable[..., Collection]) -> None:
    other = reopen()
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with collection.writer():
            holding.set()
            release.wait(WAIT)

    thread = _start(hold)
    assert holding.wait(WAIT)
    threading.Timer(0.2, release.set).start()

    with other.writer(timeout=WAIT) as writer:
        stats = writer.commit(make_docs(make_vectors(1)))

    thread.join(WAIT)
    assert not thread.is_alive()
    assert stats.generation == 1


def _writer_error_from_other_thread(collection: Collection, timeout: float) -> tuple[BaseException, float]:
    """While this thread holds `collection.writer()`, try writer(timeout) on another thread."""
    outcome: list[tuple[BaseException, float]] = []

    def try_write() -> None:
        started = time.monotonic()
        try:
            with collection.writer(timeout=timeout):
                pass
        except SemsearchError as exc:
            outcome.append((exc, time.monotonic() - started))

    with collection.writer():
        thread = _start(try_write)
        thread.join(WAIT)
    assert not thread.is_alive()
    assert len(outcome) == 1
    return outcome[0]


def test_same_handle_writer_on_another_thread_gives_up_after_timeout(collection: Collection) -> None:
    error, waited = _writer_error_from_other_thread(collection, 0.2)

    assert 0.2 <= waited < WAIT
    assert "'c'" in error.message
    # The handle still writes once the lock is free.
    assert commit(collection, make_docs(make_vectors(1))).generation == 1


def test_same_handle_writer_on_another_thread_raises_collection_locked(collection: Collection) -> None:
    error, _ = _writer_error_from_other_thread(collection, 0.2)

    assert isinstance(error, CollectionLocked)


def test_rwlock_allows_concurrent_readers() -> None:
    lock = ReadWriteLock()
    inside = threading.Barrier(3, timeout=WAIT)

    def read() -> None:
        with lock.reading():
            inside.wait()  # only passes if all three readers are inside at once

    threads = [_start(read) for _ in range(2)]
    with lock.reading():
        inside.wait()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert not inside.broken


def test_rwlock_writer_waits_for_active_reader_and_blocks_new_readers() -> None:
    lock = ReadWriteLock()
    reader_in, release_reader = threading.Event(), threading.Event()
    writer_in, release_writer = threading.Event(), threading.Event()
    late_reader_in = threading.Event()
    order: list[str] = []

    def reader() -> None:
        with lock.reading():
            reader_in.set()
            release_reader.wait(WAIT)
            order.append("reader out")

    def writer() -> None:
        with lock.writing():
            order.append("writer in")
            writer_in.set()
            release_writer.wait(WAIT)
            order.append("writer out")

    def late_reader() -> None:
        with lock.reading():
            order.append("late reader in")
            late_reader_in.set()

    threads = [_start(reader)]
    assert reader_in.wait(WAIT)
    threads.append(_start(writer))
    assert not writer_in.wait(0.2), "writer entered while a reader was active"
    threads.append(_start(late_reader))
    assert not late_reader_in.wait(0.2), "a new reader overtook the waiting writer"

    release_reader.set()
    assert writer_in.wait(WAIT)
    assert not late_reader_in.wait(0.1), "a reader entered while the writer held the lock"
    release_writer.set()
    assert late_reader_in.wait(WAIT)
    for thread in threads:
        thread.join(WAIT)
    assert order == ["reader out", "writer in", "writer out", "late reader in"]


def _well_formed(hits: list[Hit], k: int) -> bool:
    scores = [hit.score for hit in hits]
    return (len(hits) <= k and all(isinstance(hit.doc_id, str) for hit in hits)
            and scores == sorted(scores, reverse=True)
            and len({hit.doc_id for hit in hits}) == len(hits))


@pytest.mark.timeout(30)
def test_searches_run_safely_during_commits(collection: Collection,
                                            reopen: Callable[..., Collection]) -> None:
    vectors = make_vectors(120, seed=31)
    commit(collection, make_docs(vectors[:40]))  # main thread; later commits come from another
    queries = make_vectors(4, seed=32)
    stop = threading.Event()
    errors: list[BaseException] = []
    searches: list[int] = [0] * 4

    def search_loop(slot: int) -> None:
        try:
            while not stop.is_set():
                for hits in collection.search(queries, 10):
                    assert _well_formed(hits, 10), hits
                assert all(_well_formed(h, 5) for h in collection.search(queries[:1], 5, {}))
                searches[slot] += 1
        except BaseException as exc:  # noqa: B036 - reported to the main thread below
            errors.append(exc)

    def commit_loop() -> None:
        try:
            for i in range(20):
                upserts = make_docs(vectors[40 + 4 * i : 44 + 4 * i], start=40 + 4 * i)
                upserts.append(DocumentInput(doc_id=f"doc-{i}", text=f"round {i}",
                                             vector=vectors[(i * 7) % 120]))
                commit(collection, upserts, deletes=[f"doc-{20 + i}"])
        except BaseException as exc:  # noqa: B036
            errors.append(exc)

    readers = [_start(lambda slot=slot: search_loop(slot)) for slot in range(4)]
    writer = _start(commit_loop)
    writer.join(20)
    stop.set()
    for thread in readers:
        thread.join(WAIT)

    assert not writer.is_alive()
    assert not any(thread.is_alive() for thread in readers)
    assert errors == []
    assert all(n > 0 for n in searches), searches
    assert collection.generation == 21
    assert collection.count == 40 + 80 - 20
    final = reopen()
    assert snapshot(final, queries, 10) == snapshot(collection, queries, 10)


def test_writer_used_from_two_threads(collection: Collection) -> None:
    # Regression: the handle's cached writer connection once refused to cross threads.
    vectors = make_vectors(2)
    commit(collection, make_docs(vectors[:1]))
    errors: list[BaseException] = []

    def write_in_thread() -> None:
        try:
            commit(collection, make_docs(vectors[1:], start=1))
        except BaseException as exc:  # noqa: B036 - reported to the main thread below
            errors.append(exc)

    thread = _start(write_in_thread)
    thread.join(WAIT)

    assert errors == []
    assert collection.count == 2


def test_close_after_search_in_another_thread(collection: Collection) -> None:
    # Regression: close() once raised ProgrammingError on connections other threads opened.
    commit(collection, make_docs(make_vectors(2)))
    hits: list[list[Hit]] = []
    thread = _start(lambda: hits.extend(collection.search(make_vectors(1), 1)))
    thread.join(WAIT)
    assert hit_ids(hits[0]) != []

    collection.close()


def _open_files_under(folder: Path) -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own fd is gone already
            continue
        if target.startswith(str(folder)):
            names.append(Path(target).name)
    return sorted(names)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_close_releases_every_file_after_reads_and_writes(collection: Collection) -> None:
    assert _open_files_under(collection.folder) != []
    commit(collection, make_docs(make_vectors(2)))
    hits: list[list[Hit]] = []
    thread = _start(lambda: hits.extend(collection.search(make_vectors(1), 1)))
    thread.join(WAIT)
    assert hit_ids(hits[0]) != []

    collection.close()

    assert _open_files_under(collection.folder) == []


def test_reader_connections_stay_bounded(collection: Collection) -> None:
    vectors = make_vectors(5)
    commit(collection, make_docs(vectors))

    def search_once() -> None:
        assert len(collection.search(vectors[:1], 3)[0]) == 3

    for _ in range(50):  # short-lived threads, as a server's worker pool retires them
        thread = threading.Thread(target=search_once)
        thread.start()
        thread.join(timeout=10)
    assert len(collection._readers._idle) <= 8
    db = str(collection.folder / "metadata.db")
    open_fds = [fd for fd in Path("/proc/self/fd").iterdir()
                if fd.exists() and str(fd.resolve()) == db]
    assert len(open_fds) <= 10


def test_one_reload_per_new_generation(collection: Collection, reopen) -> None:  # type: ignore[no-untyped-def]
    vectors = make_vectors(4)
    other = reopen()
    commit(other, make_docs(vectors))
    loads = 0
    original = collection._load_committed

    def counting(store):  # type: ignore[no-untyped-def]
        nonlocal loads
        loads += 1
        return original(store)

    collection._load_committed = counting  # type: ignore[method-assign]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def search() -> None:
        try:
            barrier.wait(timeout=5)
            collection.search(vectors[:1], 2)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert loads == 1
    assert collection.count == 4

"""Damaged files on a copy of a collection: a damaged index is rebuilt, a damaged database refused."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from storage import Collection, CollectionUnavailable, check_collection
from tests.storage.helpers import MODEL, commit, make_docs, make_vectors, snapshot

QUERIES = make_vectors(20, seed=7)
PAGE = 4096
Snapshot = list[list[tuple[str, float]]]


def xor_bytes(path: Path) -> None:
    """The probe of the issue: XOR 8 bytes at size/2, size/3 and size-100."""
    data = bytearray(path.read_bytes())
    for offset in (len(data) // 2, len(data) // 3, len(data) - 100):
        for i in range(offset, offset + 8):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage_pages(path: Path) -> None:
    """Random bytes over the middle pages of the file."""
    data = bytearray(path.read_bytes())
    pages = len(data) // PAGE
    rng = np.random.default_rng(3)
    for page in range(pages // 3, 2 * pages // 3 + 1):
        data[page * PAGE:(page + 1) * PAGE] = rng.bytes(PAGE)
    path.write_bytes(bytes(data))


def delete(path: Path) -> None:
    path.unlink()


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Snapshot]:
    """A closed collection (400 documents, generation 2, WAL checkpointed) and its answers."""
    data = tmp_path_factory.mktemp("intact") / "data"
    collection = Collection.create(data, "c", MODEL)
    vectors = make_vectors(400, seed=4)
    commit(collection, make_docs(vectors[:200]))
    commit(collection, make_docs(vectors[200:], start=200))
    expected = snapshot(collection, QUERIES, 10)
    collection.close()  # the last connection to close checkpoints the WAL into metadata.db
    assert not (data / "c" / "metadata.db-wal").exists()
    return data, expected


def copy_of(intact: tuple[Path, Snapshot], to: Path) -> Path:
    shutil.copytree(intact[0], to)
    return to


@pytest.mark.parametrize("damage", [xor_bytes, truncate_half, delete],
                         ids=["bit-flips", "truncated", "deleted"])
def test_damaged_index_is_rebuilt_from_sqlite(intact: tuple[Path, Snapshot], tmp_path: Path,
                                              damage: Callable[[Path], None],
                                              caplog: pytest.LogCaptureFixture) -> None:
    data = copy_of(intact, tmp_path / "copy")
    damage(data / "c" / "index-2.faiss")
    caplog.set_level(logging.ERROR, logger="storage.faiss.generations")

    collection = Collection.open(data, "c")

    assert (collection.generation, collection.count, collection.rebuilds) == (2, 400, 1)
    assert snapshot(collection, QUERIES, 10) == intact[1]
    if damage is xor_bytes:
        assert "index-2.faiss does not match the checksum recorded at its commit" in caplog.text
        report = check_collection(data, "c")
        assert not report.ok and "does not match the checksum" in report.errors[0]
    with collection.writer():  # the next writer rewrites the damaged file from SQLite
        pass
    collection.close()
    assert check_collection(data, "c").ok
    again = Collection.open(data, "c")
    assert again.rebuilds == 0 and snapshot(again, QUERIES, 10) == intact[1]
    again.close()


def test_bit_flips_change_answers_when_no_checksum_was_recorded(
        intact: tuple[Path, Snapshot], tmp_path: Path) -> None:
    """What the checksum prevents: the same damage in a collection committed without one."""
    data = copy_of(intact, tmp_path / "copy")
    with sqlite3.connect(data / "c" / "metadata.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'index_checksum'")
    conn.close()
    xor_bytes(data / "c" / "index-2.faiss")
    collection = Collection.open(data, "c")
    assert collection.rebuilds == 0  # the damaged file parses: nothing else notices
    assert snapshot(collection, QUERIES, 10) != intact[1]
    collection.close()


@pytest.mark.parametrize("damage", [garbage_pages, truncate_half, delete],
                         ids=["corrupt", "truncated", "deleted"])
def test_damaged_database_makes_the_collection_unavailable(
        intact: tuple[Path, Snapshot], tmp_path: Path, damage: Callable[[Path], None]) -> None:
    data = copy_of(intact, tmp_path / "copy")
    damage(data / "c" / "metadata.db")

    with pytest.raises(CollectionUnavailable) as caught:
        Collection.open(data, "c")

    message = caught.value.message
    assert message.startswith("collection 'c' is unavailable: its database ")
    assert "restore the collection folder from a backup" in message
    assert caught.value.status == 503
    assert not check_collection(data, "c").ok


def test_no_damaged_database_page_serves_a_wrong_answer(intact: tuple[Path, Snapshot],
                                                        tmp_path: Path) -> None:
    """Each page in turn overwritten with random bytes: refused, or every answer still right."""
    source = intact[0] / "c" / "metadata.db"
    pages = source.stat().st_size // PAGE
    texts = {f"doc-{i}": f"text doc-{i}" for i in range(0, 400, 7)}
    refused = 0
    for page in range(pages):
        data = copy_of(intact, tmp_path / f"page-{page}")
        db = data / "c" / "metadata.db"
        raw = bytearray(db.read_bytes())
        raw[page * PAGE:(page + 1) * PAGE] = np.random.default_rng(page).bytes(PAGE)
        db.write_bytes(bytes(raw))
        try:
            collection = Collection.open(data, "c")
            try:
                assert snapshot(collection, QUERIES, 10) == intact[1], f"page {page}"
                assert {d: collection.get(d).text for d in texts} == texts, f"page {page}"
            finally:
                collection.close()
        except CollectionUnavailable:
            refused += 1
        shutil.rmtree(data)
    assert refused >= pages // 2  # most pages hold rows or b-tree structure


def test_damaged_vector_blob_is_not_rebuilt_into_the_index(intact: tuple[Path, Snapshot],
                                                           tmp_path: Path) -> None:
    """A stored vector changed on disk (no longer unit length) stops a rebuild: unavailable."""
    data = copy_of(intact, tmp_path / "copy")
    with sqlite3.connect(data / "c" / "metadata.db") as conn:
        conn.execute("UPDATE documents SET vector = ? WHERE doc_id = 'doc-9'",
                     (np.full(8, 3.0, np.float32).tobytes(),))
    conn.close()
    (data / "c" / "index-2.faiss").unlink()
    with pytest.raises(CollectionUnavailable, match="stored vector of row 10 is not a finite unit"):
        Collection.open(data, "c")


def test_temp_files_of_a_killed_writer_are_swept(intact: tuple[Path, Snapshot],
                                                 tmp_path: Path) -> None:
    data = copy_of(intact, tmp_path / "copy")
    folder = data / "c"
    (folder / "index-3.faiss.tmp").write_bytes(b"\0" * 1000)  # what a killed writer leaves
    (folder / "manifest.json.tmp").write_text("{")
    collection = Collection.open(data, "c")
    with collection.writer():
        pass
    assert not list(folder.glob("*.tmp"))
    commit(collection, make_docs(make_vectors(1, seed=50), prefix="x"))
    assert collection.generation == 3
    collection.close()


def test_check_sweeps_stale_temp_files_only(intact: tuple[Path, Snapshot], tmp_path: Path) -> None:
    """`check` takes no write lock: it removes only temp files no live write could be using."""
    data = copy_of(intact, tmp_path / "copy")
    stale, fresh = data / "c" / "index-3.faiss.tmp", data / "c" / "manifest.json.tmp"
    stale.write_bytes(b"\0" * 100)
    fresh.write_bytes(b"{")
    os.utime(stale, (time.time() - 120, time.time() - 120))

    report = check_collection(data, "c")

    assert report.ok and report.swept == ["index-3.faiss.tmp"]
    assert not stale.exists() and fresh.exists()

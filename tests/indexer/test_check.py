"""`semsearch check` catches every kind of damage it claims to, and passes healthy collections."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from search_api.cli import cli
from storage import Collection, DocumentInput, ModelInfo, check_collection
from storage.faiss.vector_index import FaissIndex

DIM = 8


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    collection = Collection.create(tmp_path, "c", ModelInfo(name="m", dimension=DIM, max_length=8))
    with collection.writer() as writer:
        writer.commit([DocumentInput(doc_id=str(i), text=f"t{i}", vector=unit(rng)) for i in range(20)])
        writer.commit(deletes=["3"])
    collection.close()
    return tmp_path / "c"


def run_check(data_dir: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["check", "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_healthy_collection_passes(folder: Path) -> None:
    report = check_collection(folder.parent, "c")
    assert report.ok and report.warnings == []
    assert (report.generation, report.count) == (2, 19)
    code, out, _ = run_check(folder.parent)
    assert code == 0 and "c: ok (generation 2, 19 documents)" in out


def forget_checksum(folder: Path) -> None:
    """Make the collection look committed before index checksums existed (ids are compared)."""
    with sqlite3.connect(folder / "metadata.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'index_checksum'")
    conn.close()


def test_rewritten_index_fails_its_checksum(folder: Path) -> None:
    index = FaissIndex.load(folder / "index-2.faiss")
    index.remove(np.array([int(index.ids()[0])]))
    index.save(folder / "index-2.faiss")
    code, out, err = run_check(folder.parent)
    assert code == 1 and "FAILED" in out
    assert "index-2.faiss does not match the checksum recorded at its commit" in err


def test_index_with_a_missing_id_fails(folder: Path) -> None:
    forget_checksum(folder)
    index = FaissIndex.load(folder / "index-2.faiss")
    index.remove(np.array([int(index.ids()[0])]))
    index.add(np.array([999]), unit(np.random.default_rng(1)).reshape(1, -1))
    index.save(folder / "index-2.faiss")
    code, out, err = run_check(folder.parent)
    assert code == 1 and "FAILED" in out and "disagree on 1 ids" in err


def test_index_with_wrong_count_fails(folder: Path) -> None:
    forget_checksum(folder)
    index = FaissIndex.load(folder / "index-2.faiss")
    index.remove(index.ids()[:2])
    index.save(folder / "index-2.faiss")
    report = check_collection(folder.parent, "c")
    assert not report.ok and "holds 17 vectors, SQLite 19 rows" in report.errors[0]


def test_missing_index_file_fails(folder: Path) -> None:
    (folder / "index-2.faiss").unlink()
    report = check_collection(folder.parent, "c")
    assert report.errors == ["index-2.faiss (the committed generation's index) is missing"]


def test_bad_vector_in_sqlite_fails(folder: Path) -> None:
    with sqlite3.connect(folder / "metadata.db") as conn:
        conn.execute("UPDATE documents SET vector = ? WHERE doc_id = '5'",
                      (np.full(DIM, 3.0, np.float32).tobytes(),))
    report = check_collection(folder.parent, "c")
    assert "1 stored vectors are not finite unit vectors" in report.errors


def test_manifest_states(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["generation"] = 1  # what a crash between the commit and the manifest leaves
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = check_collection(folder.parent, "c")
    assert report.ok and "does not match its checksum" in report.warnings[0]

    del manifest["checksum"]  # as written before manifests had one: still read
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = check_collection(folder.parent, "c")
    assert report.ok and "one generation behind" in report.warnings[0]

    collection = Collection.open(folder.parent, "c")
    with collection.writer():  # the next writer repairs it
        pass
    collection.close()
    assert check_collection(folder.parent, "c").warnings == []

    manifest["generation"], manifest["count"] = 7, 3
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "generation 7 with 3 documents" in check_collection(folder.parent, "c").errors[0]


def test_unreadable_database_and_unknown_collection(folder: Path) -> None:
    (folder / "metadata.db").write_bytes(b"not sqlite" * 50)
    for suffix in ("-wal", "-shm"):
        (folder / f"metadata.db{suffix}").unlink(missing_ok=True)
    assert "unreadable" in check_collection(folder.parent, "c").errors[0]
    result = CliRunner().invoke(cli, ["check", "-c", "nope", "--data-dir", str(folder.parent)])
    assert result.exit_code == 1 and "collection 'nope' not found" in result.stderr
    assert "inconsistent" not in result.stderr and "FAILED" not in result.stdout


def test_check_while_a_writer_commits(folder: Path) -> None:
    """Checks racing a writer that commits (and deletes old index files) never report damage."""
    import threading

    rng = np.random.default_rng(5)
    stop = threading.Event()
    collection = Collection.open(folder.parent, "c")

    def write() -> None:
        with collection.writer() as writer:
            for n in range(200):
                if stop.is_set():
                    return
                writer.commit([DocumentInput(doc_id=f"w{n}", text=f"w{n}", vector=unit(rng))])

    thread = threading.Thread(target=write)
    thread.start()
    reports = []
    try:
        while thread.is_alive() and len(reports) < 500:  # check for as long as the writer commits
            reports.append(check_collection(folder.parent, "c"))
    finally:
        stop.set()
        thread.join(30)
        collection.close()
    assert [r.errors for r in reports if not r.ok] == []
    assert len({r.generation for r in reports}) >= 2  # the checks really overlapped commits


def test_malformed_vector_blob_and_manifest_bytes(folder: Path) -> None:
    with sqlite3.connect(folder / "metadata.db") as conn:
        conn.execute("UPDATE documents SET vector = x'0102' WHERE doc_id = '5'")
    report = check_collection(folder.parent, "c")
    assert any("malformed" in error for error in report.errors)
    (folder / "manifest.json").write_bytes(b"\xff\xfe not utf-8")
    assert any("manifest" in w for w in check_collection(folder.parent, "c").warnings)


def test_nothing_to_check_is_an_error(tmp_path: Path) -> None:
    code, _, err = run_check(tmp_path / "nowhere")
    assert code == 1 and "no collections" in err

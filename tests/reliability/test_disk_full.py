"""`semsearch index` into a full filesystem: one-line error, no temp file left, a rerun that completes."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from search_api.cli import cli as semsearch
from storage import check_collection, fileops
from tests.reliability.helpers import cli, write_corpus
from tests.servers import clean_env

DOCS = 250
MODEL = "all-MiniLM-L6-v2"


def index_command(corpus: Path, data_dir: Path) -> list[str]:
    return ["index", str(corpus), "--collection", "full", "--model", MODEL, "--commit-every", "50",
            "--quiet", "--data-dir", str(data_dir)]


def assert_every_document_once(data_dir: Path, texts: dict[str, str]) -> int:
    report = check_collection(data_dir, "full")
    assert report.ok, report.errors
    with sqlite3.connect(data_dir / "full" / "metadata.db") as conn:
        rows = conn.execute("SELECT doc_id, text FROM documents").fetchall()
    conn.close()
    assert len(rows) == report.count == len({doc_id for doc_id, _ in rows})
    assert all(texts[doc_id] == text for doc_id, text in rows)
    return len(rows)


def assert_no_leftovers(data_dir: Path) -> None:
    assert not list(data_dir.rglob("*.tmp"))
    assert not [p for p in data_dir.iterdir() if ".creating-" in p.name]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.timeout(600)
def test_index_into_a_full_tmpfs_then_rerun_after_freeing_space(tmp_path: Path, tmpfs: Path) -> None:
    texts = write_corpus(tmp_path / "corpus.jsonl", DOCS)
    data_dir = tmpfs / "data"
    command = cli(*index_command(tmp_path / "corpus.jsonl", data_dir))

    failed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=clean_env())

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: cannot write "), failed.stderr
    assert "free disk space and run it again" in last and " free)" in last
    assert "No space left on device" in last or "disk is full" in last
    assert_no_leftovers(data_dir)
    committed = assert_every_document_once(data_dir, texts) if (data_dir / "full").exists() else 0
    assert committed < DOCS

    subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=clean_env())

    assert done.returncode == 0, done.stderr
    assert assert_every_document_once(data_dir, texts) == DOCS
    assert_no_leftovers(data_dir)


def test_index_with_enospc_at_the_index_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same without a tmpfs: the second commit's index write stops half way with ENOSPC."""
    texts = write_corpus(tmp_path / "corpus.jsonl", 120)
    data_dir = tmp_path / "data"
    real_write = fileops.OPS.write_index
    calls: list[Path] = []

    def short_write(index: object, path: Path) -> None:
        calls.append(path)
        real_write(index, path)
        if len(calls) == 2:
            os.truncate(path, path.stat().st_size // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileops.OPS, "write_index", short_write)
    failed = CliRunner().invoke(semsearch, index_command(tmp_path / "corpus.jsonl", data_dir))

    assert failed.exit_code == 1
    assert failed.exception is not None and isinstance(failed.exception, SystemExit)
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write generation 1 of collection "
                                                   "'full'"), failed.stderr
    assert "No space left on device" in lines[0]
    assert_no_leftovers(data_dir)
    assert assert_every_document_once(data_dir, texts) == 0  # generation 0: the empty collection

    monkeypatch.setattr(fileops.OPS, "write_index", real_write)
    done = CliRunner().invoke(semsearch, index_command(tmp_path / "corpus.jsonl", data_dir))
    assert done.exit_code == 0, done.output
    assert assert_every_document_once(data_dir, texts) == 120

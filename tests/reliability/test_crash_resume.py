"""Kill `semsearch index` with SIGKILL at random moments; every kill must leave a whole collection,
and re-running the same command must finish the job with every document exactly once."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from indexer.encoding import load_encoder
from storage import Collection, check_collection
from tests.conftest import TEST_CACHE
from tests.reliability.helpers import cli, write_corpus

# 12 kills at random points of the commit cycle (the 2026-11-23 run made 20): every kill is
# ~10 s of a 2-core CI machine, and the suite must stay under 15 minutes.
KILLS = 12
DOCS = 1400


def committed_generation(data_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data_dir / 'crash' / 'metadata.db'}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
    except (sqlite3.Error, TypeError):
        return -1


def wait_for_commit(data_dir: Path, after: int, process: subprocess.Popen[bytes],
                    deadline: float) -> int:
    """Wait until the committed generation passes `after` (collection creation, 0, excluded)."""
    while True:
        generation = committed_generation(data_dir)
        if generation > max(after, 0):
            return generation
        assert process.poll() is None and time.monotonic() < deadline, "the indexer stopped"
        time.sleep(0.01)


def assert_whole(data_dir: Path, texts: dict[str, str]) -> int:
    """The committed generation is consistent and holds only true copies of corpus rows."""
    report = check_collection(data_dir, "crash")
    assert report.ok, report.errors
    with sqlite3.connect(data_dir / "crash" / "metadata.db") as conn:
        rows = conn.execute("SELECT doc_id, text FROM documents").fetchall()
    assert len(rows) == report.count == len({doc_id for doc_id, _ in rows})
    assert all(texts[doc_id] == text for doc_id, text in rows)
    return len(rows)


@pytest.mark.timeout(400)
def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    texts = write_corpus(tmp_path / "corpus.jsonl", DOCS)
    data_dir = tmp_path / "data"
    command = cli("index", str(tmp_path / "corpus.jsonl"), "--collection", "crash",
                  "--model", "multilingual-e5-small", "--batch-size", "16",
                  "--commit-every", "16", "--quiet", "--data-dir", str(data_dir))
    rng = random.Random(20261123)
    kills, progress = 0, []
    deadline = time.monotonic() + 300
    while kills < KILLS and time.monotonic() < deadline:
        log = open(tmp_path / f"run-{kills}.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        # Whatever the machine's speed: wait for two commits of this run, then kill at a random
        # moment of the next commit cycle (encoding, staging, index save or SQLite commit).
        first = wait_for_commit(data_dir, committed_generation(data_dir), process, deadline)
        started = time.monotonic()
        wait_for_commit(data_dir, first, process, deadline)
        time.sleep(rng.uniform(0.0, time.monotonic() - started))
        log.close()
        if process.poll() is not None:
            pytest.fail(f"index exited ({process.returncode}) before {KILLS} kills: "
                        f"{(tmp_path / f'run-{kills}.log').read_text()[-2000:]}")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
        progress.append(assert_whole(data_dir, texts))
    assert kills == KILLS
    print("committed documents after each kill:", progress)
    assert progress == sorted(progress), "a kill lost committed documents"
    assert len(set(progress)) == KILLS, f"every kill follows a new commit: {progress}"
    assert 0 < progress[-1] < DOCS, progress

    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"{DOCS} documents in collection" in done.stdout
    assert assert_whole(data_dir, texts) == DOCS

    collection = Collection.open(data_dir, "crash")
    assert collection.count == DOCS
    # torch, as SEMSEARCH_BACKEND
    encoder = load_encoder("multilingual-e5-small", backend="torch", cache_dir=TEST_CACHE)
    top = collection.search(encoder.encode([texts["d01377"]], "query"), 1)[0][0]
    assert top.doc_id == "d01377"
    again = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert f"added 0, updated 0, unchanged {DOCS}" in again.stdout

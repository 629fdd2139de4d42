"""kill -9 during a passage-heavy bulk job, then rerun: every document's passages exactly once."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from indexer.chunking import split_passages
from indexer.encoding import load_encoder
from storage import Chunking, check_collection
from tests.reliability.helpers import cli

KILLS = 4
DOCS = 160
CHUNKING = Chunking(tokens=24, overlap=6)
WORDS = ["apples", "rivers", "engines", "violins", "glaciers", "markets", "comets", "deltas"]


def write_long_corpus(path: Path) -> dict[str, str]:
    """Documents of 6-12 sentences: several passages each at a 24-token window."""
    texts = {}
    for n in range(DOCS):
        sentences = [f"Item {n} part {i} is about {WORDS[(n * 3 + i) % len(WORDS)]} and more."
                     for i in range(6 + n % 7)]
        texts[f"d{n:04d}"] = " ".join(sentences)
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in texts.items()),
                    encoding="utf-8")
    return texts


def committed_generation(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
    except (sqlite3.Error, TypeError):
        return -1


def passages_by_document(db: Path) -> dict[str, list[tuple[int, int, int]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT d.doc_id, p.position, p.start_char, p.end_char FROM passages p "
                            "JOIN documents d ON d.id = p.document ORDER BY d.doc_id, p.position")
        found: dict[str, list[tuple[int, int, int]]] = {}
        for doc_id, position, start, end in rows:
            found.setdefault(doc_id, []).append((position, start, end))
    return found


def assert_whole(data_dir: Path, expected: dict[str, list[tuple[int, int, int]]]) -> int:
    """Consistent collection; each stored document has exactly its own passages, once."""
    report = check_collection(data_dir, "long")
    assert report.ok, report.errors
    stored = passages_by_document(data_dir / "long" / "metadata.db")
    assert len(stored) == report.count
    for doc_id, spans in stored.items():
        assert spans == expected[doc_id], doc_id
    return len(stored)


@pytest.mark.timeout(400)
def test_sigkill_during_a_passage_job_then_resume(tmp_path: Path) -> None:
    texts = write_long_corpus(tmp_path / "corpus.jsonl")
    counter = load_encoder("all-MiniLM-L6-v2", backend="torch").count_tokens
    expected = {doc_id: [(p.index, p.start, p.end) for p in split_passages(text, counter, CHUNKING)]
                for doc_id, text in texts.items()}
    assert sum(map(len, expected.values())) > 4 * DOCS  # passage-heavy
    data_dir = tmp_path / "data"
    db = data_dir / "long" / "metadata.db"
    command = cli("index", str(tmp_path / "corpus.jsonl"), "--collection", "long",
                  "--chunk-tokens", "24", "--chunk-overlap", "6", "--batch-size", "8",
                  "--commit-every", "8", "--quiet", "--data-dir", str(data_dir))
    rng = random.Random(20261201)
    progress = []
    deadline = time.monotonic() + 300
    for kill in range(KILLS):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = committed_generation(db)
        while committed_generation(db) <= max(start, 0) + 1:  # two commits of this run
            assert process.poll() is None and time.monotonic() < deadline, "the indexer stopped"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        progress.append(assert_whole(data_dir, expected))
        assert progress[-1] < DOCS, f"kill {kill} came after the job ended"
    assert progress == sorted(progress)

    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    total = sum(map(len, expected.values()))
    assert f"{DOCS} documents in collection ({total} passages)" in done.stdout
    assert assert_whole(data_dir, expected) == DOCS

"""Corpus files for the reliability tests; servers and CLI runs come from tests.servers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers import cli, running_server

__all__ = ["cli", "running_server", "write_corpus"]


def write_corpus(path: Path, count: int) -> dict[str, str]:
    """Short, distinct documents; returns id -> text."""
    topics = ["apples", "rivers", "engines", "violins", "glaciers", "markets", "comets"]
    texts = {f"d{i:05d}": f"document {i} about {topics[i % len(topics)]} and item {i * 7 % 101}"
             for i in range(count)}
    with open(path, "w", encoding="utf-8") as fh:
        for doc_id, text in texts.items():
            fh.write(json.dumps({"id": doc_id, "text": text, "n": int(doc_id[1:])}) + "\n")
    return texts

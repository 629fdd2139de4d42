"""Readers for BEIR-format evaluation sets: queries.jsonl and qrels TSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def load_queries(path: Path) -> dict[str, str]:
    """Query id -> text from a BEIR queries.jsonl (`_id`, `text`)."""
    queries: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Query id -> {corpus id: grade} from a qrels TSV with a header row."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def find_qrels(folder: Path, split: str) -> Path:
    """`qrels/<split>.tsv` (BEIR layout) or a single `qrels.tsv` beside the corpus."""
    for candidate in (folder / "qrels" / f"{split}.tsv", folder / "qrels.tsv"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no qrels/{split}.tsv or qrels.tsv in {folder}")

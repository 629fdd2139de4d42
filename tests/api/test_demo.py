"""`semsearch demo`: builds the demo collection once, then reuses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import indexer.demo as indexer_demo
import search_api.cli as cli_module
from indexer.pipeline import scan_source
from indexer.sources import SourceSpec
from storage import Collection


def test_bundled_demo_corpus_is_valid() -> None:
    spec = SourceSpec(path=indexer_demo.DEMO_CORPUS, text_fields=("title", "text"))
    assert scan_source(spec).documents == 300


def test_demo_builds_once_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "demo.jsonl"
    rows = [{"id": str(i), "title": f"Title {i}", "text": f"Abstract number {i} about topic {i}",
             "source": "SciFact"} for i in range(5)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(indexer_demo, "DEMO_CORPUS", corpus)
    data_dir = tmp_path / "data"

    first = CliRunner().invoke(cli_module.cli, ["demo", "--no-serve", "--data-dir", str(data_dir)])
    assert first.exit_code == 0, first.output
    assert "demo: added 5" in first.stderr
    demo = Collection.open(data_dir, "demo")
    assert demo.count == 5
    assert demo.get("3").text == "Title 3 Abstract number 3 about topic 3"
    assert demo.get("3").metadata == {"source": "SciFact"}

    second = CliRunner().invoke(cli_module.cli, ["demo", "--no-serve", "--data-dir", str(data_dir)])
    assert second.exit_code == 0
    assert "demo collection ready: 5 documents" in second.stderr
    assert Collection.open(data_dir, "demo").generation == demo.generation

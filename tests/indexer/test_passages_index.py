"""Indexing long documents into passages with the real MiniLM: CLI options, search answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.chunking import ChunkRequest
from indexer.encoding import Encoder
from indexer.models import SourceDocument
from indexer.pipeline import index_documents, open_collection
from search_api.cli import cli
from storage import Chunking, Collection, check_collection

TOPICS = ["volcanoes erupt lava and ash", "violins are tuned in fifths", "glaciers carve valleys",
          "comets have icy nuclei", "markets price risk", "rivers deposit silt in deltas",
          "bees communicate by dancing", "compilers translate source code"]


def long_doc(n: int) -> str:
    """Eight sentences, each on another topic: which passage matches a query is clear."""
    return " ".join(f"Report {n}, part {i}: {TOPICS[(n + i) % len(TOPICS)]}." for i in range(8))


def write_corpus(path: Path, count: int) -> dict[str, str]:
    texts = {f"r{n}": long_doc(n) for n in range(count)}
    path.write_text("".join(json.dumps({"id": k, "text": v, "n": i}) + "\n"
                            for i, (k, v) in enumerate(texts.items())), encoding="utf-8")
    return texts


def run(*args: str, data_dir: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_cli_chunk_options_are_recorded_and_kept(tmp_path: Path) -> None:
    corpus = tmp_path / "reports.jsonl"
    write_corpus(corpus, 6)
    code, out, err = run("index", str(corpus), "-c", "reports", "-q", "--chunk-tokens", "24",
                         "--chunk-overlap", "6", data_dir=tmp_path)
    assert code == 0, err
    collection = Collection.open(tmp_path, "reports")
    assert collection.chunking == Chunking(tokens=24, overlap=6)
    assert collection.count == 6 and collection.passage_count is not None
    assert collection.passage_count > 12
    assert f"6 documents in collection ({collection.passage_count} passages)" in out
    assert "truncated 0" in out

    code, out, _ = run("index", str(corpus), "-c", "reports", "-q", data_dir=tmp_path)
    assert code == 0 and "added 0, updated 0, unchanged 6" in out

    code, _, err = run("index", str(corpus), "-c", "reports", "-q", "--no-chunk", data_dir=tmp_path)
    assert code == 1 and "stores passages of 24 tokens" in err and "new collection" in err
    assert check_collection(tmp_path, "reports").ok


@pytest.mark.parametrize(("args", "message"), [
    (["--chunk-tokens", "300"], "at most 240"),
    (["--no-chunk", "--chunk-tokens", "64"], "cannot be combined"),
    (["--chunk-tokens", "64", "--chunk-overlap", "40"], "half the window"),
])
def test_bad_chunk_options_fail_before_anything_is_written(
        tmp_path: Path, args: list[str], message: str) -> None:
    corpus = tmp_path / "reports.jsonl"
    write_corpus(corpus, 2)
    code, _, err = run("index", str(corpus), "-c", "bad", "-q", *args, data_dir=tmp_path)
    assert code == 1 and message in err, err
    assert not (tmp_path / "bad").exists()


def test_no_chunk_keeps_one_vector_per_document_and_reports_truncation(tmp_path: Path) -> None:
    corpus = tmp_path / "long.jsonl"
    corpus.write_text(json.dumps({"id": "x", "text": "word " * 400}) + "\n", encoding="utf-8")
    code, out, _ = run("index", str(corpus), "-c", "plain", "-q", "--no-chunk", data_dir=tmp_path)
    assert code == 0 and "truncated 1" in out
    assert Collection.open(tmp_path, "plain").chunking is None
    code, out, _ = run("index", str(corpus), "-c", "split", "-q", data_dir=tmp_path)
    assert code == 0 and "truncated 0" in out and "(3 passages)" in out


def test_top_5_returns_5_documents_with_the_passage_that_matches(tmp_path: Path,
                                                                  minilm: Encoder) -> None:
    texts = {f"r{n}": long_doc(n) for n in range(12)}
    collection = open_collection(tmp_path, "reports", minilm, ChunkRequest(tokens=24, overlap=6))
    index_documents(collection, minilm, [SourceDocument(doc_id=k, text=v, metadata={"n": i})
                                         for i, (k, v) in enumerate(texts.items())])
    query = minilm.encode(["how do bees communicate"], "query")
    hits = collection.search(query, 5)[0]
    assert len(hits) == 5 == len({hit.doc_id for hit in hits})
    for hit in hits:
        assert hit.passage is not None and hit.text == texts[hit.doc_id]
        assert "bees communicate by dancing" in hit.text[hit.passage.start:hit.passage.end]
    filtered = collection.search(query, 5, {"n": [1, 2]})[0]
    assert sorted(hit.doc_id for hit in filtered) == ["r1", "r2"]
    assert collection.get("r3").text == texts["r3"]

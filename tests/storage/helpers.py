"""Plain helpers for storage tests: random unit vectors, documents, brute-force search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from storage import Collection, CommitStats, DocumentInput, Hit, ModelInfo
from storage.faiss.vector_index import FaissIndex

DIM = 8
MODEL = ModelInfo(name="test-model", dimension=DIM, max_length=128)


def make_vectors(n: int, d: int = DIM, seed: int = 0) -> np.ndarray:
    """`n` random L2-normalised float32 vectors: inner product is cosine only on unit vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_docs(vectors: np.ndarray, prefix: str = "doc", start: int = 0,
              metadata: Callable[[int], dict[str, Any]] | None = None) -> list[DocumentInput]:
    """One document per vector, ids `<prefix>-<i>`, text `text <prefix>-<i>`."""
    return [
        DocumentInput(doc_id=f"{prefix}-{start + i}", text=f"text {prefix}-{start + i}",
                      metadata=metadata(start + i) if metadata else {}, vector=vector)
        for i, vector in enumerate(vectors)
    ]


def commit(collection: Collection, upserts: Sequence[DocumentInput] = (),
           deletes: Sequence[str] = ()) -> CommitStats:
    """One commit through the writer lock; returns its CommitStats."""
    with collection.writer() as writer:
        return writer.commit(upserts, deletes)


def brute_force(vectors: np.ndarray, ids: Sequence[str], query: np.ndarray, k: int) -> list[str]:
    """The exact top-k ids by inner product, computed with numpy."""
    scores = vectors @ query
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def hit_ids(hits: list[Hit]) -> list[str]:
    return [hit.doc_id for hit in hits]


def snapshot(collection: Collection, queries: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """Search results as comparable (id, rounded score) lists."""
    return [[(hit.doc_id, round(hit.score, 5)) for hit in hits]
            for hits in collection.search(queries, k)]


def faiss_index(dimension: int, ids: np.ndarray, vectors: np.ndarray) -> FaissIndex:
    index = FaissIndex.create(dimension)
    index.add(ids, vectors)
    return index

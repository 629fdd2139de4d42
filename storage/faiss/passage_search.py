"""Search in a chunked collection: fetch passages, rank each document by its best passage.

`top_k` counts documents: passages are over-fetched (OVERFETCH per document asked for) and
fetched again, four times as many, while a query has fewer than k distinct documents and the
index holds more. A document's score is its best passage's (the maximum: scripts/evaluate.py
compares it with the sum of the two best), and its hit carries that passage's span.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from storage.faiss.metadata import MetadataStore
from storage.faiss.vector_index import FaissIndex
from storage.filters import Filter
from storage.index_types import SearchParams
from storage.info import StoredDocument
from storage.records import Hit, PassageSpan

OVERFETCH = 4  # passages fetched per document asked for (SciFact: 2.2 passages per document)
MIN_FETCH = 32

PassageRows = dict[int, tuple[StoredDocument, np.ndarray, PassageSpan]]


def dense(store: MetadataStore, index: FaissIndex, vectors: np.ndarray, k: int,
          allowed: np.ndarray | None, params: SearchParams | None) -> list[list[Hit]]:
    """Top-k documents per query vector, each scored by the cosine of its best passage.

    Args:
        store: a read connection (inside the caller's snapshot).
        index: the passage index (FAISS ids are passage ids).
        vectors: L2-normalised query vectors.
        k: documents per query.
        allowed: passage ids a filter allows (None: all).
        params: efSearch / nprobe overrides.
    """
    limit = index.count if allowed is None else len(allowed)
    fetch = min(limit, max(k * OVERFETCH, MIN_FETCH))
    while True:
        _, ids = index.search(vectors, fetch, allowed, params)
        rows = store.get_passages(sorted({int(i) for i in ids.ravel() if i >= 0}))
        hits = [best_dense(query, row, rows) for query, row in zip(vectors, ids, strict=True)]
        if fetch >= limit or all(len(found) >= k for found in hits):
            return [found[:k] for found in hits]
        fetch = min(limit, fetch * 4)


def lexical(store: MetadataStore, text: str, k: int, filter_: Filter | None) -> list[Hit]:
    """Top-k documents for one query text, each scored by the BM25 of its best passage."""
    fetch = max(k * OVERFETCH, MIN_FETCH)
    while True:
        found = store.lexical_search(text, fetch, filter_)
        rows = store.get_passages([pid for pid, _ in found])
        hits: dict[str, Hit] = {}
        for pid, score in found:  # best first: a document's first passage is its best
            if pid in rows and rows[pid][0].doc_id not in hits:
                doc, _, span = rows[pid]
                hits[doc.doc_id] = Hit(doc_id=doc.doc_id, score=score, text=doc.text,
                                       metadata=doc.metadata, lexical_score=score, passage=span)
        if len(hits) >= k or len(found) < fetch:
            return list(hits.values())[:k]
        fetch *= 4


def best_dense(query: np.ndarray, ids: Sequence[int], rows: PassageRows) -> list[Hit]:
    """One hit per document, scored by its best passage's cosine (from the stored vector)."""
    best: dict[str, tuple[float, StoredDocument, PassageSpan]] = {}
    for pid in ids:
        found = rows.get(int(pid))
        if found is None:
            continue
        doc, vector, span = found
        score = float(np.dot(query, vector))
        if doc.doc_id not in best or score > best[doc.doc_id][0]:
            best[doc.doc_id] = (score, doc, span)
    hits = [Hit(doc_id=doc.doc_id, score=score, text=doc.text, metadata=doc.metadata,
                dense_score=score, passage=span) for score, doc, span in best.values()]
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return hits

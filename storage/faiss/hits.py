"""Hits built from stored rows: dense scores from the stored vectors, lexical ones from BM25."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from storage.info import StoredDocument
from storage.records import Hit, PassageSpan


def dense_hits(query: np.ndarray, ids: np.ndarray,
               rows: dict[int, tuple[StoredDocument, np.ndarray]]) -> list[Hit]:
    """Hits scored with the stored vectors of the rows returned.

    While another process's newer generation is being loaded, the index in memory may lag
    SQLite; scoring from the row itself keeps every hit's score true to its text.

    Args:
        query: one L2-normalised query vector.
        ids: the rowids the index returned for it (-1 for no result).
        rows: stored document and vector by rowid.

    Returns:
        The hits, best first.
    """
    hits = []
    for rowid in ids:
        found = rows.get(int(rowid))
        if found is not None:
            doc, vector = found
            score = float(np.dot(query, vector))
            hits.append(Hit(doc_id=doc.doc_id, score=score, text=doc.text, metadata=doc.metadata,
                            dense_score=score))
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return hits


def lexical_hits(found: list[tuple[int, float]],
                 rows: dict[int, tuple[StoredDocument, np.ndarray]],
                 passage_of: Callable[[int, StoredDocument], PassageSpan | None] | None = None
                 ) -> list[Hit]:
    """Hits for BM25 (rowid, score) pairs, in their order, skipping rows no longer stored.

    Args:
        found: (rowid, BM25 score) pairs, best first.
        rows: stored document and vector by rowid.
        passage_of: the passage a hit shows, by rowid and document (chunked collections).

    Returns:
        The hits, in the order of `found`.
    """
    hits = []
    for rowid, score in found:
        if rowid in rows:
            doc = rows[rowid][0]
            passage = passage_of(rowid, doc) if passage_of is not None else None
            hits.append(Hit(doc_id=doc.doc_id, score=score, text=doc.text, metadata=doc.metadata,
                            lexical_score=score, passage=passage))
    return hits

"""Search in a chunked collection: fetch passages, rank each document by its best passage.

The grouping and over-fetching are shared with the Milvus backend (storage.passage_ranking);
this module fetches from the FAISS passage index and the SQLite lexical index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from storage.faiss.metadata import MetadataStore
from storage.faiss.vector_index import FaissIndex
from storage.filters import Filter
from storage.index_types import SearchParams
from storage.info import StoredDocument
from storage.passage_ranking import Fetched, PassageMatch, rank_documents
from storage.records import Hit, PassageSpan

# FTS5 answers any depth: the lexical channel stops when it returns fewer passages than asked.
UNBOUNDED = 1 << 62

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
    def fetch(size: int) -> list[Fetched]:
        _, ids = index.search(vectors, size, allowed, params)
        rows = store.get_passages(sorted({int(i) for i in ids.ravel() if i >= 0}))
        # `returned` is the asked size: an approximate index may answer short of what it holds.
        return [Fetched(matches=matches(query, row, rows), returned=size)
                for query, row in zip(vectors, ids, strict=True)]

    return rank_documents(fetch, k, index.count if allowed is None else len(allowed), "dense")


def lexical(store: MetadataStore, text: str, k: int, filter_: Filter | None) -> list[Hit]:
    """Top-k documents for one query text, each scored by the BM25 of its best passage."""
    def fetch(size: int) -> list[Fetched]:
        found = store.lexical_search(text, size, filter_)
        rows = store.get_passages([pid for pid, _ in found])
        return [Fetched(matches=[PassageMatch(doc=rows[pid][0], span=rows[pid][2], score=score)
                                 for pid, score in found if pid in rows],
                        returned=len(found))]

    return rank_documents(fetch, k, UNBOUNDED, "lexical")[0]


def matches(query: np.ndarray, ids: Sequence[int], rows: PassageRows) -> list[PassageMatch]:
    """The passages found for one query, scored by cosine with their stored vectors."""
    found = []
    for pid in ids:
        row = rows.get(int(pid))
        if row is not None:
            doc, vector, span = row
            found.append(PassageMatch(doc=doc, span=span, score=float(np.dot(query, vector))))
    return found

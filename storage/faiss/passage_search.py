"""Search in a chunked collection: dense ranks each document by its best passage, lexical
ranks whole documents and shows the passage with the most query terms.

The grouping, over-fetching and passage choice are shared with the Milvus backend
(storage.passage_ranking); this module reads the FAISS passage index and the SQLite tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from storage.faiss.hits import lexical_hits
from storage.faiss.metadata import MetadataStore
from storage.faiss.vector_index import FaissIndex
from storage.filters import Filter
from storage.index_types import SearchParams
from storage.info import StoredDocument
from storage.passage_ranking import Fetched, PassageMatch, lexical_passage, query_terms, rank_documents
from storage.records import Hit, PassageSpan

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
    """Top-k documents for one query text by BM25 over the whole document, each with the
    passage that holds the most query terms."""
    found = store.lexical_search(text, k, filter_)
    rowids = [rowid for rowid, _ in found]
    spans = store.passage_spans(rowids)
    terms = query_terms(text)
    return lexical_hits(found, store.get_by_rowids(rowids),
                        lambda rowid, doc: lexical_passage(terms, doc.text, spans.get(rowid, [])))


def matches(query: np.ndarray, ids: Sequence[int], rows: PassageRows) -> list[PassageMatch]:
    """The passages found for one query, scored by cosine with their stored vectors."""
    found = []
    for pid in ids:
        row = rows.get(int(pid))
        if row is not None:
            doc, vector, span = row
            found.append(PassageMatch(doc=doc, span=span, score=float(np.dot(query, vector))))
    return found

"""Documents ranked by their best passage: the grouping every backend's passage search shares.

Dense search: `top_k` counts documents: passages are over-fetched (OVERFETCH per document
asked for) and fetched again, four times as many, while a query has fewer than k distinct
documents and the channel may hold more. A document's score is its best passage's (the
maximum: scripts/passage_scoring.py compares it with the sum of the two best), and its hit
carries that passage's span.

Lexical search ranks whole documents by BM25 (better than their best passage's BM25 on
SciFact: docs/indexing.md, Measured); its hit carries the passage that holds the most of
the query's terms (`lexical_passage`). Only Milvus collections made before their documents
had a BM25 field of their own still rank lexically by the best passage.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from storage.info import StoredDocument
from storage.records import Hit, PassageSpan
from storage.tokens import MAX_QUERY_TERMS, tokenize

OVERFETCH = 4  # passages fetched per document asked for (SciFact: 2.2 passages per document)
MIN_FETCH = 32

Channel = Literal["dense", "lexical"]


@dataclass(frozen=True, kw_only=True)
class PassageMatch:
    """One passage a channel found: its document, its span and its score (cosine or BM25)."""

    doc: StoredDocument
    span: PassageSpan
    score: float


@dataclass(frozen=True, kw_only=True)
class Fetched:
    """One query's passages as a channel returned them; `returned` also counts passages left
    out (of a document deleted or rewritten meanwhile), so a short answer means exhausted."""

    matches: Sequence[PassageMatch]
    returned: int


def best_per_document(matches: Iterable[PassageMatch], channel: Channel) -> list[Hit]:
    """One hit per document, scored by its best passage, best first (ties keep found order)."""
    best: dict[str, PassageMatch] = {}
    for match in matches:
        known = best.get(match.doc.doc_id)
        if known is None or match.score > known.score:
            best[match.doc.doc_id] = match
    hits = [Hit(doc_id=m.doc.doc_id, score=m.score, text=m.doc.text, metadata=m.doc.metadata,
                dense_score=m.score if channel == "dense" else None,
                lexical_score=m.score if channel == "lexical" else None, passage=m.span)
            for m in best.values()]
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return hits


def rank_documents(fetch: Callable[[int], list[Fetched]], k: int, available: int,
                   channel: Channel) -> list[list[Hit]]:
    """Top-k documents per query, fetching passages until each query has k or none are left.

    Args:
        fetch: returns, per query, the best `n` passages the channel finds (best first).
        k: documents per query.
        available: the most passages one fetch can return (the passages stored or allowed,
            or the backend's limit on one search).
        channel: which score the hits carry (`dense_score` or `lexical_score`).

    Returns:
        Per query, up to k hits, best first, each with its best passage.
    """
    size = min(available, max(k * OVERFETCH, MIN_FETCH))
    while True:
        found = fetch(size)
        hits = [best_per_document(query.matches, channel) for query in found]
        short = any(len(ranked) < k and query.returned >= size
                    for ranked, query in zip(hits, found, strict=True))
        if size >= available or not short:
            return [ranked[:k] for ranked in hits]
        size = min(available, size * 4)


def query_terms(query: str) -> list[str]:
    """The distinct lexical terms of a query, as `lexical_passage` looks for them."""
    return list(dict.fromkeys(tokenize(query)))[:MAX_QUERY_TERMS]


def lexical_passage(terms: Sequence[str], text: str, spans: Sequence[PassageSpan]) -> PassageSpan | None:
    """The passage of `text` holding the most distinct query terms (the first on ties).

    Terms are found as substrings of the passage's NFKC-casefolded text, so "cat" also counts
    in "category": this picks the passage to show, it scores nothing.

    Args:
        terms: the query's terms (`query_terms`).
        text: the document's text.
        spans: its passages, in order.

    Returns:
        One of `spans`; None when there are none.
    """
    best, best_count = None, -1
    for span in spans:
        passage = unicodedata.normalize("NFKC", text[span.start:span.end]).casefold()
        found = sum(term in passage for term in terms)
        if found > best_count:
            best, best_count = span, found
    return best

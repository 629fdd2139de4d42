"""Reranking: cross-encoders loaded once and shared, which ones a client may name, and the limits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.rerank import (
    BUILTIN_RERANKERS,
    PairScores,
    Reranker,
    RerankFusion,
    RerankText,
    UnknownReranker,
    alias_reranker,
    fused_order,
    load_reranker,
    relevance,
    rerank_text,
    resolve_reranker_name,
)
from search_api.config import ApiSettings
from search_api.errors import EmptyQuery, InputTooLong, LimitExceeded
from search_api.services.text_checks import check_text, check_texts_limit
from storage import Hit

logger = logging.getLogger(__name__)


class RerankerRegistry:
    """Loads each cross-encoder once, on first use, and shares it between requests."""

    def __init__(self, settings: ApiSettings, preloaded: dict[str, Reranker] | None = None) -> None:
        """Remember how to load rerankers; nothing is loaded here.

        Args:
            settings: the default reranker (SEMSEARCH_RERANKER), threads, download policy.
            preloaded: already-loaded rerankers by canonical name, shared instead of reloaded.
        """
        self._settings = settings
        self._rerankers: dict[str, Reranker] = dict(preloaded or {})
        self._lock = threading.Lock()
        self._default: str | None = None

    @property
    def default(self) -> str:
        """Canonical name of SEMSEARCH_RERANKER (resolved once: it may be a folder)."""
        if self._default is None:
            self._default = resolve_reranker_name(self._settings.reranker)
        return self._default

    def allowed(self) -> list[str]:
        return sorted({*BUILTIN_RERANKERS, self.default, *self._rerankers})

    def resolve(self, name: str | None) -> str:
        """The canonical name of a reranker a client named (None: the default).

        A client can never make the server load a folder: only the built-ins, the default
        and preloaded ones may be named, and a name is never looked up on disk.

        Raises:
            UnknownReranker: the name is not one of `allowed()`.
        """
        if name is None:
            return self.default
        wanted = alias_reranker(name)
        allowed = self.allowed()
        if wanted not in allowed:
            shown = name if len(name) <= 200 else name[:200] + "..."
            raise UnknownReranker(f"reranker '{shown}' is not available on this server; "
                                  f"available: {', '.join(allowed)} (SEMSEARCH_RERANKER sets the "
                                  "default)")
        return wanted

    def get(self, name: str | None = None) -> Reranker:
        """The loaded reranker a client named (see `resolve`), loading it on first use."""
        canonical = self.resolve(name)
        reranker = self._rerankers.get(canonical)
        if reranker is not None:
            return reranker
        with self._lock:  # one load at a time: models are large
            if canonical not in self._rerankers:
                logger.info("loading reranker %s", canonical)
                settings = self._settings
                self._rerankers[canonical] = load_reranker(
                    canonical, threads=settings.threads, allow_download=settings.allow_download,
                    trust_remote_code=settings.trust_remote_code)
            return self._rerankers[canonical]

    def loaded(self) -> list[str]:
        return sorted(self._rerankers)


@dataclass(frozen=True, kw_only=True)
class RankedText:
    """One scored document: its position in the request, raw logit, 0..1 relevance, cut or not."""

    index: int
    score: float
    relevance: float
    truncated: bool


@dataclass(frozen=True, kw_only=True)
class RerankOutcome:
    model: str
    ranked: list[RankedText]  # best first
    took_ms: float


@dataclass(frozen=True, kw_only=True)
class RerankSpec:
    """`rerank` of a search request: how many fused hits to reorder, with which model."""

    top_n: int | None = None
    model: str | None = None
    fusion: RerankFusion | None = None  # None: SEMSEARCH_RERANK_FUSION
    weight: float | None = None  # None: SEMSEARCH_RERANK_WEIGHT
    text: RerankText | None = None  # None: SEMSEARCH_RERANK_TEXT


@dataclass(frozen=True, kw_only=True)
class RerankedHits:
    """Hits in cross-encoder order; `scores[i]` and `truncated[i]` are None past the top n."""

    hits: list[Hit]
    scores: list[float | None]
    truncated: list[bool | None]


class RerankService:
    def __init__(self, settings: ApiSettings, rerankers: RerankerRegistry) -> None:
        self._settings = settings
        self.rerankers = rerankers

    def rerank(self, query: str, documents: Sequence[str], *, top_n: int | None = None,
               model: str | None = None, truncate: bool = True) -> RerankOutcome:
        """Score every document against the query and return them best first.

        Args:
            query: the query text.
            documents: the texts to reorder (1..SEMSEARCH_MAX_RERANK_DOCUMENTS).
            top_n: how many to return (default: all).
            model: a reranker the server allows (default: SEMSEARCH_RERANKER).
            truncate: cut pairs longer than the model's window; if False, refuse them.

        Returns:
            The documents' positions and scores, best first.

        Raises:
            EmptyQuery, EmptyText, LimitExceeded: bad input.
            InputTooLong: `truncate` is False and a pair does not fit the model's window.
        """
        started = time.perf_counter()
        check_text("query", query, self._settings, EmptyQuery)
        check_texts_limit("documents", documents, self._settings.max_rerank_documents,
                          "SEMSEARCH_MAX_RERANK_DOCUMENTS", self._settings)
        reranker = self.rerankers.get(model)
        scored = reranker.score(query, documents)
        if not truncate and any(scored.truncated):
            first = scored.truncated.index(True)
            raise InputTooLong(f"query + documents[{first}] is longer than {reranker.name}'s "
                               f"{reranker.max_length} tokens; shorten it or send truncate: true")
        ranked = _ranked(scored)[:top_n]
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        return RerankOutcome(model=reranker.name, ranked=ranked, took_ms=took_ms)

    def depth(self, spec: RerankSpec, queries: int) -> int:
        """How many first-stage hits to rerank per query, within the limits.

        Raises:
            LimitExceeded: top_n, or queries x top_n, is over SEMSEARCH_MAX_RERANK_DOCUMENTS.
        """
        top_n = spec.top_n or self._settings.rerank_top_n
        limit = self._settings.max_rerank_documents
        if top_n * queries > limit:
            raise LimitExceeded(f"rerank of {top_n} hits x {queries} queries is over the limit "
                                f"of {limit} pairs per request (SEMSEARCH_MAX_RERANK_DOCUMENTS)")
        return top_n

    def rerank_hits(self, query: str, hits: list[Hit], spec: RerankSpec,
                    top_k: int) -> RerankedHits:
        """Reorder the first `depth(spec)` hits with the cross-encoder; the rest keep their order.

        Args:
            query: the query the hits were found for.
            hits: first-stage hits, best first.
            spec: the request's rerank options (fusion, weight, text; see RerankSpec).
            top_k: hits to return.

        Returns:
            The top_k hits after reranking, with their rerank scores (0..1).
        """
        settings = self._settings
        head = hits[:self.depth(spec, 1)]
        which = spec.text or settings.rerank_text
        scored = self.rerankers.get(spec.model).score(query, [rerank_text(h, which) for h in head])
        order = fused_order([h.score for h in head], scored.scores,
                            fusion=spec.fusion or settings.rerank_fusion,
                            weight=settings.rerank_weight if spec.weight is None else spec.weight)
        ranked = _ranked(scored, order)
        ordered = [head[r.index] for r in ranked] + hits[len(head):]
        scores: list[float | None] = [r.relevance for r in ranked]
        cut: list[bool | None] = [r.truncated for r in ranked]
        rest = len(ordered) - len(head)
        return RerankedHits(hits=ordered[:top_k], scores=(scores + [None] * rest)[:top_k],
                            truncated=(cut + [None] * rest)[:top_k])


def _ranked(scored: PairScores, order: list[int] | None = None) -> list[RankedText]:
    """The scored texts in `order` (default: the cross-encoder's, ties by position)."""
    probabilities = relevance(scored.scores)
    if order is None:
        order = fused_order([], scored.scores, fusion="none")
    return [RankedText(index=i, score=float(scored.scores[i]),
                       relevance=float(probabilities[i]), truncated=scored.truncated[i])
            for i in order]

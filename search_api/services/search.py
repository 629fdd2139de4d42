"""Searcher: encode queries with the collection's model, search FAISS, join metadata."""

from __future__ import annotations

import time
from dataclasses import dataclass

from indexer.encoding import alias_name
from indexer.query import encode_and_search
from indexer.rerank import UnknownReranker
from search_api.config import ApiSettings
from search_api.errors import EmptyQuery, LimitExceeded
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.reranking import RerankService, RerankSpec
from search_api.services.text_checks import check_text
from storage import CollectionHandle, Filter, Hit, check_model
from storage.fusion import Fusion, Mode, check_mode
from storage.index_types import SearchParams


@dataclass(frozen=True, kw_only=True)
class QueryHits:
    hits: list[Hit]
    truncated: bool
    rerank_scores: list[float | None] | None = None  # per hit, when the request reranked
    rerank_truncated: list[bool | None] | None = None


@dataclass(frozen=True, kw_only=True)
class SearchOutcome:
    collection: str
    model: str
    mode: Mode
    results: list[QueryHits]
    took_ms: float


class Searcher:
    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 encoders: EncoderRegistry, reranking: RerankService | None = None) -> None:
        self._settings = settings
        self._collections = collections
        self._encoders = encoders
        self._reranking = reranking

    def search(self, name: str, queries: list[str], top_k: int,
               filter_: Filter | None = None, model: str | None = None, *,
               mode: str | None = None, fusion: str | None = None,
               alpha: float | None = None, rerank: RerankSpec | None = None) -> SearchOutcome:
        """Top-k hits for each query.

        Args:
            name: collection name.
            queries: one or more non-empty query texts.
            top_k: hits per query, 1..max_top_k.
            filter_: metadata equality filter, applied the same way in every mode.
            model: if given, must be the collection's model.
            mode: dense, lexical or hybrid (default: the `search_mode` setting).
            fusion: rrf or alpha, for hybrid (default: the `hybrid_fusion` setting).
            alpha: the dense channel's weight in hybrid (default: the `hybrid_alpha` setting).
            rerank: reorder the fused top n with a cross-encoder (default: no reranking).

        Returns:
            One result per query, in order, and the time taken.
        """
        started = time.perf_counter()
        settings = self._settings
        self._check_limits(queries, top_k)
        chosen = check_mode(mode or settings.search_mode)
        how = Fusion(method=fusion or settings.hybrid_fusion,  # type: ignore[arg-type]
                     alpha=settings.hybrid_alpha if alpha is None else alpha)
        depth = top_k
        if rerank is not None:
            if self._reranking is None:
                raise UnknownReranker("no reranker is configured in this service")
            depth = max(top_k, self._reranking.depth(rerank, len(queries)))
            self._reranking.rerankers.resolve(rerank.model)  # an unknown name fails before work
        collection = self._collections.get(name)
        self._check_model(collection, model)
        # Lexical mode needs no model at all: it is not loaded for it.
        encoder = None if chosen == "lexical" else self._encoders.get(collection.model.name)
        found = encode_and_search(collection, encoder, queries, mode=chosen, k=depth,
                                  filter_=filter_ or None, fusion=how,
                                  params=SearchParams(ef_search=settings.ef_search,
                                                      nprobe=settings.nprobe))
        results = [self._result(q, h, t, rerank, top_k)
                   for q, h, t in zip(queries, found.hits, found.truncated, strict=True)]
        took_ms = (time.perf_counter() - started) * 1000
        return SearchOutcome(collection=name, model=collection.model.name, mode=chosen,
                             results=results, took_ms=round(took_ms, 2))

    def _result(self, query: str, hits: list[Hit], truncated: bool, rerank: RerankSpec | None,
                top_k: int) -> QueryHits:
        if rerank is None or self._reranking is None:
            return QueryHits(hits=hits, truncated=truncated)
        reranked = self._reranking.rerank_hits(query, hits, rerank, top_k)
        return QueryHits(hits=reranked.hits, truncated=truncated, rerank_scores=reranked.scores,
                         rerank_truncated=reranked.truncated)

    def _check_limits(self, queries: list[str], top_k: int) -> None:
        settings = self._settings
        if not queries:
            raise EmptyQuery("'queries' is empty: give at least one query")
        for position, query in enumerate(queries):
            where = "query" if len(queries) == 1 else f"queries[{position}]"
            check_text(where, query, settings, EmptyQuery)
        if len(queries) > settings.max_queries:
            raise LimitExceeded(f"{len(queries)} queries in one request; the limit is "
                                f"{settings.max_queries} (SEMSEARCH_MAX_QUERIES)")
        if not 1 <= top_k <= settings.max_top_k:
            raise LimitExceeded(f"top_k must be between 1 and {settings.max_top_k}, got {top_k}")

    @staticmethod
    def _check_model(collection: CollectionHandle, model: str | None) -> None:
        if model is not None:
            stored = collection.model
            check_model(collection.name, stored, alias_name(model), stored.dimension)

"""Searcher: encode queries with the collection's model, search FAISS, join metadata."""

from __future__ import annotations

import time
from dataclasses import dataclass

from indexer.encoding import alias_name
from search_api.config import ApiSettings
from search_api.errors import EmptyQuery, LimitExceeded
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.text_checks import check_text
from storage import Collection, Filter, Hit, check_model


@dataclass(frozen=True, kw_only=True)
class QueryHits:
    hits: list[Hit]
    truncated: bool


@dataclass(frozen=True, kw_only=True)
class SearchOutcome:
    collection: str
    model: str
    results: list[QueryHits]
    took_ms: float


class Searcher:
    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 encoders: EncoderRegistry) -> None:
        self._settings = settings
        self._collections = collections
        self._encoders = encoders

    def search(self, name: str, queries: list[str], top_k: int,
               filter_: Filter | None = None, model: str | None = None) -> SearchOutcome:
        """Top-k hits for each query.

        Args:
            name: collection name.
            queries: one or more non-empty query texts.
            top_k: hits per query, 1..max_top_k.
            filter_: metadata equality filter.
            model: if given, must be the collection's model.

        Returns:
            One result per query, in order, and the time taken.
        """
        started = time.perf_counter()
        self._check_limits(queries, top_k)
        collection = self._collections.get(name)
        self._check_model(collection, model)
        encoder = self._encoders.get(collection.model.name)
        encoded = encoder.encode_batch(queries, "query")
        hits = collection.search(encoded.vectors, top_k, filter_ or None)
        results = [QueryHits(hits=h, truncated=t)
                   for h, t in zip(hits, encoded.truncated, strict=True)]
        took_ms = (time.perf_counter() - started) * 1000
        return SearchOutcome(collection=name, model=collection.model.name, results=results,
                             took_ms=round(took_ms, 2))

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
    def _check_model(collection: Collection, model: str | None) -> None:
        if model is not None:
            stored = collection.model
            check_model(collection.name, stored, alias_name(model), stored.dimension)

"""FaqMatcher: a user message -> the best FAQ intent and its answer, or no match."""

from __future__ import annotations

import time
from dataclasses import dataclass

from indexer.faq.match import IntentScore, match_queries
from search_api.config import ApiSettings
from search_api.errors import EmptyQuery, LimitExceeded
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.text_checks import check_text
from storage.faq_store import require_faq
from storage.fusion import Fusion, Mode, check_mode

NO_SCORE = -1.0  # the lowest cosine: what an FAQ with no questions scores


@dataclass(frozen=True, kw_only=True)
class FaqMatch:
    """The outcome of one match: `intent`/`answer` are None unless `matched`."""

    matched: bool
    intent: str | None
    answer: str | None
    score: float
    threshold: float
    mode: Mode
    candidates: list[IntentScore]
    truncated: bool
    took_ms: float


class FaqMatcher:
    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 encoders: EncoderRegistry) -> None:
        self._settings = settings
        self._collections = collections
        self._encoders = encoders

    def match(self, name: str, query: str, top_k: int = 3,
              threshold: float | None = None, *, mode: str | None = None) -> FaqMatch:
        """Match `query` against the FAQ collection `name`.

        Args:
            name: an FAQ collection (built by `semsearch faq import`).
            query: the user's message.
            top_k: how many candidate intents to return, each with its best question.
            threshold: overrides the FAQ's stored (calibrated) threshold for this call.
            mode: dense, lexical or hybrid; default: the mode the FAQ was calibrated in, else
                the `faq_mode` setting.

        Returns:
            Whether the best intent reaches the threshold, that intent and its answer if
            so, its score, the threshold used and the top_k candidate intents.

        Raises:
            EmptyQuery: the query is blank.
            LimitExceeded: the query is too long or top_k is out of range.
            IndexNotFound: no such collection.
            NotAnFaq: the collection is not an FAQ.
        """
        started = time.perf_counter()
        self._check(query, top_k)
        collection = self._collections.get(name)
        config = require_faq(collection.faq_config(), name)
        encoder = self._encoders.get(collection.model.name)
        chosen = check_mode(mode or config.mode or self._settings.faq_mode)
        fusion = Fusion(method=self._settings.hybrid_fusion, alpha=self._settings.hybrid_alpha)
        depth = max(self._settings.faq_search_depth, top_k * 5)  # room for top_k distinct intents
        ranked, truncated = match_queries(collection, encoder, [query], depth=depth, mode=chosen,
                                          fusion=fusion)
        intents = ranked[0]
        used = config.threshold if threshold is None else threshold
        best = intents[0] if intents else None
        matched = best is not None and best.score >= used
        return FaqMatch(
            matched=matched,
            intent=best.intent if matched and best else None,
            answer=best.answer if matched and best else None,
            score=best.score if best else NO_SCORE,
            threshold=used,
            mode=chosen,
            candidates=intents[:top_k],
            truncated=truncated[0],
            took_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    def _check(self, query: str, top_k: int) -> None:
        settings = self._settings
        check_text("query", query, settings, EmptyQuery)
        if not 1 <= top_k <= settings.faq_max_top_k:
            raise LimitExceeded(f"top_k must be between 1 and {settings.faq_max_top_k} "
                                f"(SEMSEARCH_FAQ_MAX_TOP_K), got {top_k}")

"""FAQ matching at query time: a user's messages to the FAQ's intents, best first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.encoding import Encoder, Kind
from indexer.query import encode_and_search
from storage import Hit, check_model
from storage.backend import CollectionHandle
from storage.fusion import Fusion, Mode

# e5-style models recommend the "query" prefix on both sides of a symmetric task; an FAQ
# question and a user's message are both questions, so both are encoded as queries.
QUESTION_KIND: Kind = "query"
DEFAULT_SEARCH_DEPTH = 50
_ENCODE_BATCH = 64


@dataclass(frozen=True, kw_only=True)
class IntentScore:
    """An intent's score for one query: the best score over its questions, and that question."""

    intent: str
    question: str
    answer: str
    score: float


def rank_intents(hits: Sequence[Hit], mode: Mode = "dense") -> list[IntentScore]:
    """Group question hits by intent, best intent first (hits come best first).

    An intent ranks by its best question's score in the mode searched. In hybrid mode its
    score is that question's cosine similarity, so dense and hybrid share one threshold scale;
    a question only the lexical channel found gets the lowest cosine, -1.
    """
    best: dict[str, IntentScore] = {}
    order: list[str] = []
    for hit in hits:
        intent = str(hit.metadata.get("intent", ""))
        if not intent or intent in best:
            continue
        score = hit.score
        if mode == "hybrid":
            score = hit.dense_score if hit.dense_score is not None else -1.0
        best[intent] = IntentScore(intent=intent, question=hit.text,
                                   answer=str(hit.metadata.get("answer", "")), score=score)
        order.append(intent)
    if mode == "hybrid":
        return [best[intent] for intent in order]
    return sorted(best.values(), key=lambda s: (-s.score, s.intent))


def match_queries(collection: CollectionHandle, encoder: Encoder, queries: Sequence[str], *,
                  depth: int = DEFAULT_SEARCH_DEPTH, mode: Mode = "dense",
                  fusion: Fusion | None = None) -> tuple[list[list[IntentScore]], list[bool]]:
    """Rank the FAQ's intents for each query (the questions' top `depth` hits, grouped).

    Args:
        collection: an FAQ collection.
        encoder: its model.
        queries: user messages.
        depth: how many questions to retrieve per query before grouping by intent.
        mode: dense, lexical (BM25; no encoding) or hybrid.
        fusion: how hybrid fuses the channels.

    Returns:
        Per query, its intents best first; and which queries were truncated.
    """
    check_model(collection.name, collection.model, encoder.name, encoder.dimension)
    ranked: list[list[IntentScore]] = []
    truncated: list[bool] = []
    for start in range(0, len(queries), _ENCODE_BATCH):
        found = encode_and_search(collection, encoder, queries[start:start + _ENCODE_BATCH],
                                  mode=mode, k=max(1, depth), kind=QUESTION_KIND, fusion=fusion)
        ranked.extend(rank_intents(hits, mode) for hits in found.hits)
        truncated.extend(found.truncated)
    return ranked, truncated

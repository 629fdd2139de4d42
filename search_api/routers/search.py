"""Search routes: POST /collections/{name}/search and GET /search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from search_api.deps import SearcherDep, SettingsDep
from search_api.schemas.core import (
    BatchSearchResponse,
    Hit,
    Passage,
    QueryResult,
    RerankOptions,
    SearchRequest,
    SearchResponse,
)
from search_api.services.reranking import RerankSpec
from search_api.services.search import QueryHits, SearchOutcome
from storage import Hit as StoredHit

router = APIRouter(tags=["search"])


def _hits(result: QueryHits) -> list[Hit]:
    scores = result.rerank_scores or [None] * len(result.hits)
    cut = result.rerank_truncated or [None] * len(result.hits)
    return [Hit(id=h.doc_id, score=h.score, text=h.text, metadata=h.metadata,
                dense_score=h.dense_score, lexical_score=h.lexical_score, rerank_score=s,
                rerank_truncated=c, passage=_passage(h))
            for h, s, c in zip(result.hits, scores, cut, strict=True)]


def _passage(hit: StoredHit) -> Passage | None:
    if hit.passage is None:
        return None
    span = hit.passage
    return Passage(text=hit.text[span.start:span.end], start=span.start, end=span.end,
                   index=span.index)


def _rerank_spec(rerank: bool | RerankOptions) -> RerankSpec | None:
    if isinstance(rerank, RerankOptions):
        return RerankSpec(top_n=rerank.top_n, model=rerank.model, fusion=rerank.fusion,
                          weight=rerank.weight, text=rerank.text)
    return RerankSpec() if rerank else None


def _single(outcome: SearchOutcome) -> SearchResponse:
    first = outcome.results[0]
    return SearchResponse(collection=outcome.collection, model=outcome.model, mode=outcome.mode,
                          hits=_hits(first), truncated=first.truncated, took_ms=outcome.took_ms)


def _json(model: BaseModel) -> Response:
    """The response model already built and valid: serialise it once, in pydantic's Rust code.
    (Returned as a model, FastAPI would dump it to dicts, validate those again, then serialise.)"""
    return Response(content=model.model_dump_json(), media_type="application/json")


@router.post("/collections/{name}/search", response_model=SearchResponse | BatchSearchResponse)
def search_collection(name: str, body: SearchRequest,
                      searcher: SearcherDep) -> Response:
    """Top-k documents for `query`, or for each of `queries`, in dense, lexical or hybrid mode."""
    outcome = searcher.search(name, body.texts(), body.top_k, body.filter, body.model,
                              mode=body.mode, fusion=body.fusion, alpha=body.alpha,
                              rerank=_rerank_spec(body.rerank))
    if body.query is not None:
        return _json(_single(outcome))
    results = [QueryResult(hits=_hits(r), truncated=r.truncated) for r in outcome.results]
    return _json(BatchSearchResponse(collection=outcome.collection, model=outcome.model,
                                     mode=outcome.mode, results=results, took_ms=outcome.took_ms))


@router.get("/search", response_model=SearchResponse)
def search_get(
    searcher: SearcherDep,
    settings: SettingsDep,
    q: Annotated[str, Query(description="query text")],
    collection: Annotated[str | None, Query(description="default: SEMSEARCH_DEFAULT_COLLECTION")] = None,
    top_k: Annotated[int, Query(ge=1)] = 10,
    mode: Annotated[Literal["dense", "lexical", "hybrid"] | None,
                    Query(description="default: SEMSEARCH_SEARCH_MODE")] = None,
    rerank: Annotated[bool, Query(description="reorder the top hits with the cross-encoder")] = False,
    rerank_top_n: Annotated[int | None, Query(ge=1, description="hits to reorder (default: "
                                                                "SEMSEARCH_RERANK_TOP_N)")] = None,
) -> Response:
    """Convenience form of search: `GET /search?q=...&collection=...&top_k=10&rerank=true`."""
    name = collection or settings.default_collection
    spec = RerankSpec(top_n=rerank_top_n) if rerank or rerank_top_n else None
    return _json(_single(searcher.search(name, [q], top_k, mode=mode, rerank=spec)))

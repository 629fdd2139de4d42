"""Search routes: POST /collections/{name}/search and GET /search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from search_api.deps import SearcherDep, SettingsDep
from search_api.schemas import (
    BatchSearchResponse,
    Hit,
    Passage,
    QueryResult,
    SearchRequest,
    SearchResponse,
)
from search_api.services.search import QueryHits, SearchOutcome

router = APIRouter(tags=["search"])


def _hits(result: QueryHits) -> list[Hit]:
    return [Hit(id=h.doc_id, score=h.score, text=h.text, metadata=h.metadata,
                dense_score=h.dense_score, lexical_score=h.lexical_score,
                passage=None if h.passage is None else Passage(
                    text=h.text[h.passage.start:h.passage.end], start=h.passage.start,
                    end=h.passage.end, index=h.passage.index))
            for h in result.hits]


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
                              mode=body.mode, fusion=body.fusion, alpha=body.alpha)
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
) -> Response:
    """Convenience form of search: `GET /search?q=...&collection=...&top_k=10&mode=hybrid`."""
    name = collection or settings.default_collection
    return _json(_single(searcher.search(name, [q], top_k, mode=mode)))

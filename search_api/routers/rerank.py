"""Rerank routes: Cohere / Jina `POST /v1/rerank` (and Cohere's v2 path), TEI `POST /rerank`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from search_api.deps import RerankDep
from search_api.schemas.rerank import (
    CohereDocument,
    CohereRerankRequest,
    CohereRerankResponse,
    CohereResult,
    TeiRank,
    TeiRerankRequest,
)

router = APIRouter(tags=["rerank"])


@router.post("/v1/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True)
@router.post("/v2/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True,
             include_in_schema=False)
def cohere_rerank(body: CohereRerankRequest, service: RerankDep) -> CohereRerankResponse:
    """Documents reordered by a cross-encoder, as Cohere and Jina return them."""
    texts = body.texts()
    outcome = service.rerank(body.query, texts, top_n=body.top_n, model=body.model)
    results = [CohereResult(index=r.index, relevance_score=r.relevance, truncated=r.truncated,
                            document=CohereDocument(text=texts[r.index])
                            if body.return_documents else None) for r in outcome.ranked]
    return CohereRerankResponse(id=str(uuid.uuid4()), model=outcome.model, results=results)


@router.post("/rerank", response_model=list[TeiRank], response_model_exclude_none=True)
def tei_rerank(body: TeiRerankRequest, service: RerankDep, response: Response) -> list[TeiRank]:
    """Texts reordered by a cross-encoder, as Text Embeddings Inference returns them."""
    outcome = service.rerank(body.query, body.texts, truncate=body.truncate is not False)
    if cut := [str(r.index) for r in outcome.ranked if r.truncated]:
        response.headers["x-truncated"] = ",".join(cut)  # TEI's body has no place for it
    return [TeiRank(index=r.index, score=r.score if body.raw_scores else r.relevance,
                    text=body.texts[r.index] if body.return_text else None)
            for r in outcome.ranked]

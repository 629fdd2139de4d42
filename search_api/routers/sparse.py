"""POST /v1/sparse-embeddings: token weights of a sparse (SPLADE-style) model."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import SparseDep
from search_api.schemas.sparse import (
    SparseEmbedding,
    SparseEmbeddingRequest,
    SparseEmbeddingResponse,
    SparseUsage,
    TokenWeightOut,
)

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/sparse-embeddings", response_model=SparseEmbeddingResponse)
def sparse_embeddings(body: SparseEmbeddingRequest, service: SparseDep) -> SparseEmbeddingResponse:
    """Non-zero token weights per input, heaviest first; `truncated` says if a text was cut."""
    outcome = service.embed(body.model, body.input, body.top_k)
    data = [SparseEmbedding(index=i, truncated=item.truncated,
                            embedding=[TokenWeightOut(token=w.token, token_id=w.token_id, weight=w.weight)
                                       for w in item.weights])
            for i, item in enumerate(outcome.items)]
    usage = SparseUsage(prompt_tokens=outcome.prompt_tokens, total_tokens=outcome.prompt_tokens)
    return SparseEmbeddingResponse(data=data, model=outcome.model, usage=usage)

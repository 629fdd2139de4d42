"""OpenAI-compatible routes: POST /v1/embeddings and GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import EmbeddingsDep
from search_api.schemas.openai import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    Usage,
)

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/embeddings", response_model=EmbeddingResponse)
def embeddings(body: EmbeddingRequest, service: EmbeddingsDep) -> EmbeddingResponse:
    """Embeddings as OpenAI returns them; works with the `openai` client's default base64."""
    outcome = service.embed(body.model, body.input, body.dimensions, body.encoding_format)
    data = [Embedding(index=i, embedding=e) for i, e in enumerate(outcome.embeddings)]
    usage = Usage(prompt_tokens=outcome.prompt_tokens, total_tokens=outcome.prompt_tokens)
    return EmbeddingResponse(data=data, model=outcome.model, usage=usage)


@router.get("/models", response_model=ModelList)
def models(service: EmbeddingsDep) -> ModelList:
    """The models a client may name: built-ins, SEMSEARCH_MODEL and those collections use."""
    return ModelList(data=[ModelCard(id=name) for name in service.models()])

"""OpenAI-compatible routes: POST /v1/embeddings, GET /v1/models and /v1/models/{id}."""

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
from search_api.services.embeddings import check_truncation, kind_for

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/embeddings", response_model=EmbeddingResponse)
def embeddings(body: EmbeddingRequest, service: EmbeddingsDep) -> EmbeddingResponse:
    """Embeddings as OpenAI returns them; works with the `openai` client's default base64."""
    check_truncation(body.truncate)
    outcome = service.embed(body.model, body.input, body.dimensions, body.encoding_format,
                            kind_for(body.input_type))
    data = [Embedding(index=i, embedding=e) for i, e in enumerate(outcome.embeddings)]
    usage = Usage(prompt_tokens=outcome.prompt_tokens, total_tokens=outcome.prompt_tokens)
    return EmbeddingResponse(data=data, model=outcome.model, usage=usage)


@router.get("/models", response_model=ModelList)
def models(service: EmbeddingsDep) -> ModelList:
    """The names a client may send: built-ins, configured models, those collections use, and
    the served names of SEMSEARCH_SERVED_MODEL_NAMES."""
    return ModelList(data=[ModelCard(id=m.id, root=m.root) for m in service.models()])


@router.get("/models/{model_id:path}", response_model=ModelCard)
def model(model_id: str, service: EmbeddingsDep) -> ModelCard:
    """One model (`openai` client: `models.retrieve`); 404 `model_not_found` if not served."""
    entry = service.model(model_id)
    return ModelCard(id=entry.id, root=entry.root)

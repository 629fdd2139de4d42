"""Ollama's embedding routes: POST /api/embed and the older POST /api/embeddings."""

from __future__ import annotations

import time

from fastapi import APIRouter

from search_api.deps import EmbeddingsDep
from search_api.schemas.compat import (
    OllamaEmbeddingsRequest,
    OllamaEmbeddingsResponse,
    OllamaEmbedRequest,
    OllamaEmbedResponse,
)
from search_api.services.compat import ollama_model

router = APIRouter(prefix="/api", tags=["ollama"])


@router.post("/embed", response_model=OllamaEmbedResponse)
def embed(body: OllamaEmbedRequest, service: EmbeddingsDep) -> OllamaEmbedResponse:
    """Ollama's /api/embed: L2-normalised vectors, one per input."""
    started = time.perf_counter_ns()
    outcome = service.embed(ollama_model(body.model), body.input, body.dimensions)
    vectors = [v for v in outcome.embeddings if isinstance(v, list)]
    return OllamaEmbedResponse(model=outcome.model, embeddings=vectors,
                               total_duration=time.perf_counter_ns() - started,
                               prompt_eval_count=outcome.prompt_tokens)


@router.post("/embeddings", response_model=OllamaEmbeddingsResponse)
def embeddings(body: OllamaEmbeddingsRequest, service: EmbeddingsDep) -> OllamaEmbeddingsResponse:
    """Ollama's older /api/embeddings: one vector for `prompt`."""
    outcome = service.embed(ollama_model(body.model), [body.prompt])
    vector = outcome.embeddings[0]
    return OllamaEmbeddingsResponse(embedding=vector if isinstance(vector, list) else [])

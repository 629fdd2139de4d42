"""Text Embeddings Inference's routes (also Hugging Face `InferenceClient(base_url)`):
POST /embed, GET /info, and POST /, which embeds or scores sentences by the body's shape."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import EmbeddingsDep, SettingsDep, SimilarityDep
from search_api.schemas.compat import (
    TeiEmbedRequest,
    TeiInfo,
    TeiPredictRequest,
    TeiSimilarityRequest,
)
from search_api.services.compat import server_version, tei_kind
from search_api.services.embeddings import EmbeddingService
from search_api.services.similarity import SimilarityService

router = APIRouter(tags=["tei"])


@router.post("/embed", response_model=list[list[float]])
def embed(body: TeiEmbedRequest, service: EmbeddingsDep) -> list[list[float]]:
    """TEI's /embed: one vector per input (a single text gives a list of one), SEMSEARCH_MODEL."""
    return tei_embed(body, service)


@router.get("/info", response_model=TeiInfo)
def info(service: EmbeddingsDep, settings: SettingsDep) -> TeiInfo:
    """TEI's /info: the model /embed uses, its max input length and the batch limit."""
    model = service.default_model()
    max_length = service.max_length(model)
    return TeiInfo(model_id=model, max_concurrent_requests=512, max_input_length=max_length,
                   max_batch_tokens=max_length * settings.max_similarity_items,
                   max_client_batch_size=settings.max_similarity_items, version=server_version())


@router.post("/", response_model=list[list[float]] | list[float])
def predict(body: TeiPredictRequest, embeddings: EmbeddingsDep,
            similarity: SimilarityDep) -> list[list[float]] | list[float]:
    """TEI's / for an embedding model: `inputs` texts are embedded, `inputs.source_sentence` and
    `inputs.sentences` scored (what `InferenceClient(base_url=...)` sends)."""
    if isinstance(body, TeiSimilarityRequest):
        return tei_similarity(body, similarity)
    return tei_embed(body, embeddings)


def tei_embed(body: TeiEmbedRequest, service: EmbeddingService) -> list[list[float]]:
    kind = tei_kind(body.normalize, body.truncation_direction, body.prompt_name)
    outcome = service.embed(service.default_model(), body.inputs, body.dimensions, "float", kind)
    return [vector for vector in outcome.embeddings if isinstance(vector, list)]


def tei_similarity(body: TeiSimilarityRequest, service: SimilarityService) -> list[float]:
    """Cosine of the source with each sentence; the model is chosen by language, as in /similarity."""
    options = body.parameters
    if options is not None:
        tei_kind(options.normalize, options.truncation_direction, options.prompt_name)
    scores = service.many([body.inputs.source_sentence], body.inputs.sentences)
    return scores.matrix[0]

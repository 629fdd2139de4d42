"""POST /similarity: two sentences, ModelScope's source_sentence × sentences_to_compare (also
wrapped in its hosted `input`), or TEI's `inputs.source_sentence` × `inputs.sentences`; the
body's shape says which."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import SimilarityDep
from search_api.routers.tei import tei_similarity
from search_api.schemas.compat import (
    AnySimilarityRequest,
    ModelScopeSimilarityRequest,
    TeiSimilarityRequest,
)
from search_api.schemas.similarity import (
    ManySimilarityResponse,
    ManyTruncated,
    PairSimilarityResponse,
    PairTruncated,
)
from search_api.services.similarity import SimilarityService

router = APIRouter(tags=["similarity"])


@router.post("/similarity",
             response_model=PairSimilarityResponse | ManySimilarityResponse | list[float],
             response_model_exclude_none=True)
def similarity(body: AnySimilarityRequest, service: SimilarityDep
               ) -> PairSimilarityResponse | ManySimilarityResponse | list[float]:
    """Cosine similarity of `sentence_a` and `sentence_b`, or of each source with each candidate
    (TEI's shape answers a bare list of scores, as TEI does)."""
    if isinstance(body, TeiSimilarityRequest):
        return tei_similarity(body, service)
    if isinstance(body, ModelScopeSimilarityRequest):
        return _many(service, body.input.source_sentence, body.input.sentences_to_compare,
                     body.model, False)
    if body.sentence_a is not None and body.sentence_b is not None:
        pair = service.pair(body.sentence_a, body.sentence_b, body.model)
        return PairSimilarityResponse(sentence_a=body.sentence_a, sentence_b=body.sentence_b,
                                      similarity=pair.similarity, model=pair.model,
                                      truncated=PairTruncated(sentence_a=pair.truncated[0],
                                                              sentence_b=pair.truncated[1]))
    return _many(service, body.source_sentence or [], body.sentences_to_compare or [], body.model,
                 body.return_embeddings)


def _many(service: SimilarityService, sources: list[str], candidates: list[str],
          model: str | None, return_embeddings: bool) -> ManySimilarityResponse:
    many = service.many(sources, candidates, model, return_embeddings)
    return ManySimilarityResponse(
        scores=many.matrix[0], matrix=many.matrix if len(many.matrix) > 1 else None,
        text_embedding=many.embeddings, model=many.model,
        truncated=ManyTruncated(source_sentence=many.source_truncated,
                                sentences_to_compare=many.candidate_truncated))

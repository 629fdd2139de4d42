"""POST /similarity: two sentences, or ModelScope's source_sentence × sentences_to_compare."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import SimilarityDep
from search_api.schemas.similarity import (
    ManySimilarityResponse,
    ManyTruncated,
    PairSimilarityResponse,
    PairTruncated,
    SimilarityRequest,
)

router = APIRouter(tags=["similarity"])


@router.post("/similarity", response_model=PairSimilarityResponse | ManySimilarityResponse,
             response_model_exclude_none=True)
def similarity(body: SimilarityRequest,
               service: SimilarityDep) -> PairSimilarityResponse | ManySimilarityResponse:
    """Cosine similarity of `sentence_a` and `sentence_b`, or of each source with each candidate."""
    if body.sentence_a is not None and body.sentence_b is not None:
        pair = service.pair(body.sentence_a, body.sentence_b, body.model)
        return PairSimilarityResponse(sentence_a=body.sentence_a, sentence_b=body.sentence_b,
                                      similarity=pair.similarity, model=pair.model,
                                      truncated=PairTruncated(sentence_a=pair.truncated[0],
                                                              sentence_b=pair.truncated[1]))
    many = service.many(body.source_sentence or [], body.sentences_to_compare or [], body.model,
                        body.return_embeddings)
    return ManySimilarityResponse(
        scores=many.matrix[0], matrix=many.matrix if len(many.matrix) > 1 else None,
        text_embedding=many.embeddings, model=many.model,
        truncated=ManyTruncated(source_sentence=many.source_truncated,
                                sentences_to_compare=many.candidate_truncated))

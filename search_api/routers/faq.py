"""FAQ route: POST /faq/{name}/match."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import FaqMatcherDep
from search_api.schemas.faq import FaqCandidate, FaqMatchRequest, FaqMatchResponse

router = APIRouter(prefix="/faq", tags=["faq"])


@router.post("/{name}/match", response_model=FaqMatchResponse)
def match(name: str, body: FaqMatchRequest, matcher: FaqMatcherDep) -> FaqMatchResponse:
    """The intent and answer for a user message, or `matched: false` below the threshold."""
    found = matcher.match(name, body.query, body.top_k, body.threshold, mode=body.mode)
    candidates = [FaqCandidate(intent=c.intent, question=c.question, score=c.score)
                  for c in found.candidates]
    return FaqMatchResponse(matched=found.matched, intent=found.intent, answer=found.answer,
                            score=found.score, threshold=found.threshold, mode=found.mode,
                            candidates=candidates,
                            truncated=found.truncated, took_ms=found.took_ms)

"""Request and response models of FAQ matching (POST /faq/{name}/match)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search_api.schemas.core import Text


class FaqMatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(description="the user's message")
    top_k: int = Field(default=3, ge=1, strict=True,
                       description="candidate intents to return (1..50 by default)")
    threshold: float | None = Field(
        default=None, ge=-1.0, allow_inf_nan=False,
        description="overrides the FAQ's stored (calibrated) threshold for this request "
                    "(cosine in dense and hybrid mode, BM25 in lexical mode)",
    )
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(
        default=None, description="default: the mode the FAQ was calibrated in, else "
                                  "SEMSEARCH_FAQ_MODE")


class FaqCandidate(BaseModel):
    intent: str
    question: str = Field(description="the intent's question closest to the query")
    score: float = Field(description="cosine similarity of the query and that question "
                                     "(BM25 in lexical mode)")


class FaqMatchResponse(BaseModel):
    matched: bool = Field(description="the best intent's score reached the threshold")
    intent: str | None = Field(description="the best intent if matched, else null")
    answer: str | None = Field(description="its answer if matched, else null")
    score: float = Field(description="the best intent's score (even when not matched)")
    threshold: float = Field(description="the threshold used")
    mode: str = Field(description="the search mode used")
    candidates: list[FaqCandidate] = Field(description="the top_k intents, best first")
    truncated: bool = Field(description="the query was cut to the model's max length")
    took_ms: float

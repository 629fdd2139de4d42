"""Request and response models for POST /similarity (two sentences, or ModelScope's shape)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from search_api.schemas.core import Text

_PAIR = ("sentence_a", "sentence_b")
_MANY = ("source_sentence", "sentences_to_compare")


class SimilarityRequest(BaseModel):
    """Either `sentence_a` + `sentence_b`, or `source_sentence` + `sentences_to_compare`."""

    model_config = ConfigDict(extra="forbid")

    sentence_a: Text | None = Field(default=None, description="first sentence of a pair")
    sentence_b: Text | None = Field(default=None, description="second sentence of a pair")
    source_sentence: list[Text] | None = Field(
        default=None, description="ModelScope shape: one or more source sentences")
    sentences_to_compare: list[Text] | None = Field(
        default=None, description="ModelScope shape: candidates scored against each source")
    model: Text | None = Field(default=None, description="default: SEMSEARCH_MODEL")
    return_embeddings: bool = Field(
        default=False, strict=True,
        description="ModelScope shape only: also return the vectors (sources, then candidates)")

    @model_validator(mode="after")
    def _exactly_one_shape(self) -> SimilarityRequest:
        pair = [getattr(self, f) is not None for f in _PAIR]
        many = [getattr(self, f) is not None for f in _MANY]
        if all(pair) and not any(many):
            if self.return_embeddings:
                raise ValueError("'return_embeddings' works only with 'source_sentence' and "
                                 "'sentences_to_compare'")
            return self
        if all(many) and not any(pair):
            return self
        raise ValueError("send either 'sentence_a' and 'sentence_b' (two strings), or "
                         "'source_sentence' and 'sentences_to_compare' (two lists of strings), "
                         "not a mix")


class PairTruncated(BaseModel):
    sentence_a: bool
    sentence_b: bool


class PairSimilarityResponse(BaseModel):
    sentence_a: str
    sentence_b: str
    similarity: float = Field(description="cosine similarity of the two sentence vectors")
    status: Literal["success"] = "success"
    model: str
    truncated: PairTruncated = Field(description="which sentence was cut to the model's max length")


class ManyTruncated(BaseModel):
    source_sentence: list[bool]
    sentences_to_compare: list[bool]


class ManySimilarityResponse(BaseModel):
    scores: list[float] = Field(description="cosine of the first source with each candidate")
    matrix: list[list[float]] | None = Field(
        default=None, description="every source (rows) against every candidate (columns); "
                                  "only when there is more than one source")
    text_embedding: list[list[float]] | None = Field(
        default=None, description="sources then candidates, in order; only if return_embeddings")
    model: str
    truncated: ManyTruncated
    status: Literal["success"] = "success"

"""Request and response models of POST /v1/sparse-embeddings (OpenAI embeddings style)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search_api.schemas.core import Text


class SparseEmbeddingRequest(BaseModel):
    """Like an OpenAI embeddings body, for a sparse (SPLADE-style) model; unknown fields refused."""

    model_config = ConfigDict(extra="forbid")

    model: Text = Field(description="a sparse model the server allows (SEMSEARCH_SPARSE_MODELS)")
    input: Text | list[Text] = Field(description="a string or a list of strings")
    top_k: int | None = Field(
        default=None, ge=1, strict=True,
        description="keep the heaviest N tokens per text; null keeps every non-zero token")


class TokenWeightOut(BaseModel):
    token: str
    token_id: int
    weight: float = Field(description="> 0; entries are sorted by weight, heaviest first")


class SparseEmbedding(BaseModel):
    object: Literal["sparse_embedding"] = "sparse_embedding"
    index: int
    embedding: list[TokenWeightOut]
    truncated: bool = Field(description="the text was longer than the model reads; its end was cut")


class SparseUsage(BaseModel):
    prompt_tokens: int = Field(description="tokens by the model's tokenizer, without special tokens")
    total_tokens: int


class SparseEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[SparseEmbedding]
    model: str
    usage: SparseUsage

"""Request and response models of the OpenAI-compatible API (/v1/embeddings, /v1/models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search_api.schemas.core import Text

InputType = Literal["query", "search_query", "passage", "document", "search_document",
                    "classification", "clustering"]


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings body, plus the vendor fields other clients add; other unknown
    fields are refused, as OpenAI does."""

    model_config = ConfigDict(extra="forbid")

    model: Text = Field(description="an allowed model, see GET /v1/models")
    # Token ids (OpenAI allows int arrays) parse here so that the service can answer a clear
    # 400 saying that only text is supported, instead of a 422 about union members.
    input: Text | list[Text | int | list[int]] = Field(
        description="a string or a list of strings (token-id arrays get a 400: with LangChain, "
                    "set check_embedding_ctx_length=False)")
    encoding_format: Literal["float", "base64"] | None = Field(
        default="float", description="'base64': little-endian float32 bytes, base64-encoded; "
                                     "null means 'float'")
    dimensions: int | None = Field(
        default=None, strict=True,
        description="keep the first N components and re-normalise (1..model dimension)")
    user: Text | None = Field(default=None, description="accepted and ignored")
    input_type: InputType | None = Field(
        default=None, description="Cohere / NVIDIA style: 'query' and 'search_query' encode the "
                                  "texts as queries (e5 models prefix them 'query: '); any other "
                                  "value, or none, as documents")
    truncate: bool | Literal["NONE", "END", "START"] | None = Field(
        default=None, description="accepted: texts are always cut at the end to the model's "
                                  "max length ('START' gets a 400)")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int = Field(description="approximate: words, and CJK characters one each")
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str = Field(description="the name to send as `model`")
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "semsearch"
    root: str = Field(description="the model that answers this name (SEMSEARCH_SERVED_MODEL_NAMES)")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

"""Request and response models at the HTTP boundary."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from storage import InvalidFilter, InvalidMetadata, metadata_json
from storage.records import id_problem


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode ({exc.reason})") from exc
    return value


def _storable_metadata(value: dict[str, Any]) -> dict[str, Any]:
    try:
        metadata_json(value)
    except InvalidMetadata as exc:
        raise ValueError(exc.message) from exc
    return value


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) \
        else type(value).__name__


def _check_filter_shape(value: object) -> None:
    """InvalidFilter (400) for a filter that is not {field: scalar or list of scalars}: the
    documented error, saying what to send, rather than pydantic's description of our types."""
    if not isinstance(value, dict):
        raise InvalidFilter('\'filter\' must be a JSON object of field: value, like '
                            f'{{"topic": "a"}}, got {_json_kind(value)}')
    for field, given in value.items():
        for item in given if isinstance(given, list) else [given]:
            if not isinstance(item, str | int | float | bool):
                name = field if len(field) <= 100 else field[:100] + "..."
                example = json.dumps({name: ["a", "b"]}, ensure_ascii=False)
                raise InvalidFilter(f"filter value for '{name}' must be a string, number or "
                                    f"boolean, or a list of them meaning any of (e.g. "
                                    f"{example}); got {_json_kind(item)}")


Text = Annotated[str, AfterValidator(_valid_unicode)]
FilterScalar = Annotated[str, AfterValidator(_valid_unicode)] | bool | int | float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RerankOptions(_Strict):
    """`rerank` of a search request, when given as an object."""

    top_n: int | None = Field(default=None, ge=1, strict=True,
                              description="fused hits to reorder (default: SEMSEARCH_RERANK_TOP_N)")
    model: Text | None = Field(default=None, description="reranker (default: SEMSEARCH_RERANKER)")
    fusion: Literal["none", "rrf", "weighted"] | None = Field(
        default=None, description="order of the reranked hits: the cross-encoder's alone (none), "
                                  "reciprocal-rank fusion with the first stage (rrf), or weighted "
                                  "normalised scores; default: SEMSEARCH_RERANK_FUSION")
    weight: float | None = Field(default=None, ge=0.0, le=1.0,
                                 description="weighted only: the cross-encoder's share (0..1); "
                                             "default: SEMSEARCH_RERANK_WEIGHT")
    text: Literal["document", "passage"] | None = Field(
        default=None, description="what the cross-encoder reads: the document, or its best "
                                  "passage in a chunked collection; default: SEMSEARCH_RERANK_TEXT")


class SearchRequest(_Strict):
    query: Text | None = Field(default=None, description="one query (or use `queries`)")
    queries: list[Text] | None = Field(default=None, description="several queries in one call")
    top_k: int = Field(default=10, ge=1, strict=True, description="hits per query (1..1000 by default)")
    filter: dict[str, FilterScalar | list[FilterScalar]] | None = Field(
        default=None, description="metadata equality filter; a list value means any of"
    )
    model: Text | None = Field(default=None, description="must match the collection's model")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(
        default=None, description="dense (embeddings), lexical (BM25) or hybrid (both, fused); "
                                  "default: SEMSEARCH_SEARCH_MODE")
    fusion: Literal["rrf", "alpha"] | None = Field(
        default=None, description="hybrid only: reciprocal rank fusion or normalised weighted "
                                  "scores; default: SEMSEARCH_HYBRID_FUSION")
    alpha: float | None = Field(default=None, ge=0.0, le=1.0,
                                description="hybrid only: weight of the dense channel (0..1); "
                                            "default: SEMSEARCH_HYBRID_ALPHA")
    rerank: StrictBool | RerankOptions = Field(
        default=False, description="reorder the top hits with a cross-encoder: true, or "
                                   "{\"top_n\": N, \"model\": ...}; default: off")

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_shape(cls, value: object) -> object:
        # Raised as a domain error, not a ValueError, so that it is not wrapped into a 422.
        if value is not None:
            _check_filter_shape(value)
        return value

    @model_validator(mode="after")
    def _one_of_query_or_queries(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' (a string) or 'queries' (a list)")
        return self

    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class Passage(BaseModel):
    text: str = Field(description="the passage: the document's text[start:end]")
    start: int = Field(description="offset of its first character in the document's text")
    end: int = Field(description="offset just past its last character")
    index: int = Field(description="its position among the document's passages, from 0")


class Hit(BaseModel):
    id: str
    score: float = Field(description="higher is better: cosine similarity in dense mode, BM25 in "
                                     "lexical mode, the fused score in hybrid mode")
    text: str
    metadata: dict[str, Any]
    dense_score: float | None = Field(default=None, description="cosine similarity, if the dense "
                                                                "channel returned this document")
    lexical_score: float | None = Field(default=None, description="BM25, if the lexical channel "
                                                                  "matched this document")
    rerank_score: float | None = Field(default=None, description="0..1 from the cross-encoder, "
                                                                 "if the request reranked this hit")
    rerank_truncated: bool | None = Field(default=None, description="query + text were cut to "
                                                                    "the reranker's window")
    passage: Passage | None = Field(default=None, description="the document's best passage, in a "
                                                              "collection that stores passages")


class QueryResult(BaseModel):
    hits: list[Hit]
    truncated: bool = Field(description="the query was cut to the model's max length")


class SearchResponse(BaseModel):
    collection: str
    model: str
    mode: str
    hits: list[Hit]
    truncated: bool
    took_ms: float


class BatchSearchResponse(BaseModel):
    collection: str
    model: str
    mode: str
    results: list[QueryResult]
    took_ms: float


class DocumentIn(_Strict):
    id: Text = Field(min_length=1, description="document id; an existing id is replaced")
    text: Text
    metadata: Annotated[dict[str, Any], AfterValidator(_storable_metadata)] = Field(
        default_factory=dict, description="JSON object, stored and filterable"
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("id is blank")
        if isinstance(value, str) and (problem := id_problem(value)):
            raise ValueError(problem)
        return value


class UpsertRequest(_Strict):
    documents: list[DocumentIn] = Field(min_length=1)
    model: Text | None = Field(default=None, description="model for a new collection")
    chunk_tokens: int | None = Field(default=None, ge=8, le=100_000, description=(
        "passage window in model tokens for a new collection (default 200); an existing "
        "collection keeps its own"))
    chunk_overlap: int | None = Field(default=None, ge=0, description="tokens consecutive "
                                      "passages share (default 50)")
    no_chunk: bool = Field(default=False, description="a new collection keeps one vector per "
                           "document (cut at the model's window) instead of passages")


class UpsertResponse(BaseModel):
    collection: str
    model: str
    added: int
    updated: int
    unchanged: int
    truncated: int
    count: int
    generation: int


class DeleteResponse(BaseModel):
    collection: str
    deleted: str
    count: int
    generation: int


class ModelOut(BaseModel):
    name: str
    dimension: int
    max_length: int
    normalized: bool


class ChunkingOut(BaseModel):
    tokens: int
    overlap: int


class CollectionInfo(BaseModel):
    name: str
    model: ModelOut
    count: int = Field(description="documents")
    passages: int | None = Field(default=None, description="passages, if it stores them")
    chunking: ChunkingOut | None = Field(default=None, description="passage window and overlap "
                                         "in tokens; null: one vector per document")
    generation: int
    created_at: str
    updated_at: str
    fields: list[str]


class CollectionSummary(BaseModel):
    name: str
    kind: Literal["documents", "faq"] = Field(
        description="faq: built by `semsearch faq import`, answers POST /faq/{name}/match")
    model: str | None
    count: int | None
    passages: int | None = None
    error: str | None = Field(default=None, description="why the collection cannot be used")


class CollectionList(BaseModel):
    collections: list[CollectionSummary]


class DocumentOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    models: list[str]
    collections: list[str]
    errors: dict[str, str] = Field(default_factory=dict)

"""Request and response models of the rerank endpoints: Cohere / Jina shape and TEI shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from search_api.schemas.compat import lower_case
from search_api.schemas.core import Text

# Declared in one spelling: generated clients refuse an enum of "Right" and "right".
RightOnly = Annotated[Literal["right"], BeforeValidator(lower_case)]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentText(BaseModel):
    """A document given as an object; only `text` is read (other fields are ignored)."""

    model_config = ConfigDict(extra="allow")

    text: Text


class CohereRerankRequest(_Strict):
    """Cohere v1/v2 and Jina `rerank` request (the fields those clients send)."""

    model: Text | None = Field(default=None, description="reranker (default: SEMSEARCH_RERANKER)")
    query: Text
    documents: list[Text | DocumentText] = Field(description="strings or {\"text\": ...} objects")
    top_n: int | None = Field(default=None, ge=1, strict=True, description="results returned")
    return_documents: bool | None = Field(default=None, description="echo each document's text")
    rank_fields: list[str] | None = Field(default=None, description="only [\"text\"] is supported")
    max_chunks_per_doc: int | None = Field(default=None, description="accepted, not used: texts "
                                                                     "are cut to the model window")
    max_tokens_per_doc: int | None = Field(default=None, description="accepted, not used: texts "
                                                                     "are cut to the model window")
    priority: int | None = Field(default=None, description="accepted, not used")
    relevant_spans: Any = Field(default=None, description="not supported")

    @model_validator(mode="after")
    def _supported(self) -> CohereRerankRequest:
        if self.rank_fields not in (None, ["text"]):
            raise ValueError("rank_fields: only [\"text\"] is supported; put the text to rank "
                             "in each document's 'text'")
        if self.relevant_spans is not None:
            raise ValueError("relevant_spans is not supported by this service")
        return self

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class CohereDocument(BaseModel):
    text: str


class CohereResult(BaseModel):
    index: int
    relevance_score: float = Field(description="0..1, the logistic of the cross-encoder's logit")
    document: CohereDocument | None = None
    truncated: bool = Field(description="query + document were cut to the model's window")


class CohereRerankResponse(BaseModel):
    id: str
    model: str
    results: list[CohereResult]


class TeiRerankRequest(_Strict):
    """Text Embeddings Inference's `POST /rerank` request."""

    query: Text
    texts: list[Text]
    raw_scores: bool = Field(default=False, description="logits instead of 0..1 scores")
    return_text: bool = Field(default=False, description="echo each text")
    truncate: bool | None = Field(default=None, description="false: refuse pairs over the "
                                                            "window (413); default: cut them")
    truncation_direction: RightOnly = Field(
        default="right", description="only right (the end is cut); TEI's 'Right' is accepted too")


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None

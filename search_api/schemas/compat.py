"""Request and response models of the other servers' shapes: TEI / Hugging Face, ModelScope, Ollama."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from search_api.schemas.core import Text
from search_api.schemas.similarity import SimilarityRequest

PromptName = Literal["query", "passage", "document"]


def lower_case(value: object) -> object:
    """A string lower-cased (enum values clients send in either case); anything else as is."""
    return value.lower() if isinstance(value, str) else value


# TEI's own docs spell these Left / Right, Hugging Face's client left / right: take either,
# declare one spelling (a generated client's enum cannot hold both).
Direction = Annotated[Literal["left", "right"], BeforeValidator(lower_case)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeiOptions(_Strict):
    """The options TEI takes beside `inputs`; texts are always cut at the end when too long."""

    normalize: bool | None = Field(
        default=None, description="vectors are always L2-normalised; false gets a 400")
    truncate: bool | None = Field(default=None, description="accepted: over-long texts are always cut")
    truncation_direction: Direction | None = Field(
        default=None, description="'right' (the default); 'left' gets a 400")
    prompt_name: PromptName | None = Field(
        default=None, description="'query' encodes as a query (e5: 'query: '); default: as documents")


class TeiEmbedRequest(TeiOptions):
    """TEI's POST /embed body (also Hugging Face `InferenceClient.feature_extraction`)."""

    inputs: Text | list[Text] = Field(description="a text or a list of texts")
    dimensions: int | None = Field(
        default=None, strict=True,
        description="keep the first N components and re-normalise (1..model dimension)")


class TeiSimilarityInputs(_Strict):
    source_sentence: Text = Field(description="the sentence the others are compared with")
    sentences: list[Text] = Field(description="the sentences to score against it")


class TeiSimilarityRequest(_Strict):
    """TEI's (and Hugging Face Inference's) sentence-similarity body."""

    inputs: TeiSimilarityInputs
    parameters: TeiOptions | None = Field(default=None, description="TEI's options, all optional")


class ModelScopeInput(_Strict):
    source_sentence: list[Text] = Field(description="one or more source sentences")
    sentences_to_compare: list[Text] = Field(description="candidates scored against each source")


class ModelScopeSimilarityRequest(_Strict):
    """ModelScope's hosted request: the sentence-similarity input wrapped in `input`."""

    input: ModelScopeInput
    model: Text | None = Field(default=None, description="default: by language, as in /similarity")


# Tags start with "shape:" so that error messages can leave them out of field locations.
def _similarity_shape(body: Any) -> str:
    """The request shape, from the body's top-level keys: TEI `inputs`, ModelScope `input`."""
    if isinstance(body, dict):
        if "inputs" in body:
            return "shape:tei"
        if "input" in body:
            return "shape:modelscope"
    if isinstance(body, TeiSimilarityRequest | ModelScopeSimilarityRequest):
        return "shape:tei" if isinstance(body, TeiSimilarityRequest) else "shape:modelscope"
    return "shape:semsearch"


AnySimilarityRequest = Annotated[
    Annotated[SimilarityRequest, Tag("shape:semsearch")]
    | Annotated[TeiSimilarityRequest, Tag("shape:tei")]
    | Annotated[ModelScopeSimilarityRequest, Tag("shape:modelscope")],
    Discriminator(_similarity_shape),
]


def _predict_shape(body: Any) -> str:
    inputs = body.get("inputs") if isinstance(body, dict) else getattr(body, "inputs", None)
    return "shape:similarity" if isinstance(inputs, dict | TeiSimilarityInputs) else "shape:embed"


TeiPredictRequest = Annotated[
    Annotated[TeiEmbedRequest, Tag("shape:embed")]
    | Annotated[TeiSimilarityRequest, Tag("shape:similarity")],
    Discriminator(_predict_shape),
]


def _embedding_type() -> dict[str, dict[str, str]]:
    return {"embedding": {}}


class TeiInfo(BaseModel):
    """What TEI's GET /info reports, for this server's /embed model."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str = "float32"
    model_type: dict[str, dict[str, str]] = Field(
        default_factory=_embedding_type, description="an embedding model")
    max_concurrent_requests: int
    max_input_length: int = Field(description="tokens; longer texts are cut")
    max_batch_tokens: int
    max_client_batch_size: int = Field(description="texts per request")
    tokenization_workers: int = 1
    version: str


class OllamaEmbedRequest(_Strict):
    """Ollama's POST /api/embed body."""

    model: Text = Field(description="an allowed model or served name, see GET /v1/models")
    input: Text | list[Text] = Field(description="a text or a list of texts")
    truncate: bool | None = Field(default=None, description="accepted: over-long texts are always cut")
    options: dict[str, Any] | None = Field(default=None, description="accepted and ignored")
    keep_alive: float | str | None = Field(default=None, description="accepted and ignored")
    dimensions: int | None = Field(
        default=None, strict=True, description="keep the first N components and re-normalise")


class OllamaEmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int = Field(description="nanoseconds")
    load_duration: int = 0
    prompt_eval_count: int = Field(description="approximate tokens, as in /v1/embeddings")


class OllamaEmbeddingsRequest(_Strict):
    """Ollama's older POST /api/embeddings body: one `prompt`."""

    model: Text = Field(description="an allowed model or served name, see GET /v1/models")
    prompt: Text = Field(description="the text to embed")
    options: dict[str, Any] | None = Field(default=None, description="accepted and ignored")
    keep_alive: float | str | None = Field(default=None, description="accepted and ignored")


class OllamaEmbeddingsResponse(BaseModel):
    embedding: list[float]

"""Embeddings for the OpenAI-compatible API: document vectors, optionally shortened or base64."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from indexer.encoding import Kind
from search_api.config import ApiSettings
from search_api.errors import InvalidDimensions, UnsupportedInput
from search_api.services.model_access import ModelEntry, find_model, model_entries, resolve_allowed
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.text_checks import check_text, check_texts

EncodingFormat = Literal["float", "base64"]
QUERY_INPUT_TYPES = frozenset({"query", "search_query"})
TOKEN_IDS_MESSAGE = (
    "'input' holds token ids; this server embeds text only: send a string or a list of strings "
    "(LangChain's OpenAIEmbeddings sends token ids unless it is given "
    "check_embedding_ctx_length=False)")
EmbeddingInput = str | Sequence[str | int | Sequence[int]]

# One token per CJK character, Hangul syllable or kana; one per other run of non-spaces.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
                    r"|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


@dataclass(frozen=True, kw_only=True)
class EmbeddingOutcome:
    model: str
    embeddings: list[list[float] | str]
    """One per input, in order: floats, or base64 of little-endian float32."""
    prompt_tokens: int


def count_tokens(text: str) -> int:
    """An approximate token count for `usage`.

    The Encoder protocol exposes no tokenizer, so this counts whitespace-separated words,
    except that each CJK character counts as one (Chinese has no spaces; one character is
    close to what the models' tokenizers give). It is for reporting only.
    """
    return len(_TOKEN.findall(text))


def shorten(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """Matryoshka-style: keep the first `dimensions` components and L2-normalise again."""
    prefix = vectors[:, :dimensions].astype(np.float32)
    norms = np.linalg.norm(prefix, axis=1, keepdims=True)
    shortened: np.ndarray = prefix / np.maximum(norms, np.finfo(np.float32).tiny)
    return shortened


def to_base64(vector: np.ndarray) -> str:
    """Little-endian float32 bytes, base64: what OpenAI clients decode by default."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


class EmbeddingService:
    """Vectors for texts with an allowed model, as documents (kind="document")."""

    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 encoders: EncoderRegistry) -> None:
        self._settings = settings
        self._collections = collections
        self._encoders = encoders

    def embed(self, model: str, inputs: EmbeddingInput, dimensions: int | None = None,
              encoding_format: EncodingFormat | None = "float",
              kind: Kind = "document") -> EmbeddingOutcome:
        """Embed one text or a list of texts.

        Args:
            model: an allowed model or served name (see `models`).
            inputs: a string or a list of strings; token-id arrays are refused.
            dimensions: keep only the first N components (re-normalised), 1..model dimension.
            encoding_format: "float" lists (also for None), or "base64" of little-endian float32.
            kind: encode as documents (the default) or as queries (e5's "query: " prefix).

        Returns:
            The canonical model name, one embedding per input and the token count.
        """
        texts = self._texts(inputs)
        name = resolve_allowed(model, self._settings, self._collections)
        encoder = self._encoders.get(name)
        if dimensions is not None and not 1 <= dimensions <= encoder.dimension:
            raise InvalidDimensions(f"dimensions must be between 1 and {encoder.dimension} "
                                    f"for model '{name}', got {dimensions}")
        vectors = encoder.encode_batch(texts, kind).vectors
        if dimensions is not None and dimensions < encoder.dimension:
            vectors = shorten(vectors, dimensions)
        embeddings: list[list[float] | str]
        if encoding_format == "base64":
            embeddings = [to_base64(v) for v in vectors]
        else:
            embeddings = vectors.tolist()
        return EmbeddingOutcome(model=name, embeddings=embeddings,
                                prompt_tokens=sum(count_tokens(t) for t in texts))

    def models(self) -> list[ModelEntry]:
        """The names a client may send (canonical, then served names) and who answers them."""
        return model_entries(self._settings, self._collections)

    def model(self, model_id: str) -> ModelEntry:
        """One name a client may send; ModelNotFound (404) if this server does not answer it."""
        return find_model(model_id, self._settings, self._collections)

    def max_length(self, model: str) -> int:
        """The model's window in tokens (texts beyond it are cut)."""
        return self._encoders.get(resolve_allowed(model, self._settings, self._collections)).max_length

    def default_model(self) -> str:
        """The model of requests that cannot name one (TEI's /embed): SEMSEARCH_MODEL."""
        return resolve_allowed(self._settings.model, self._settings, self._collections)

    def _texts(self, inputs: EmbeddingInput) -> list[str]:
        if isinstance(inputs, str):
            check_text("input", inputs, self._settings)
            return [inputs]
        if any(not isinstance(item, str) for item in inputs):
            raise UnsupportedInput(TOKEN_IDS_MESSAGE)
        texts = [item for item in inputs if isinstance(item, str)]
        check_texts("input", texts, self._settings)
        return texts


def kind_for(input_type: str | None) -> Kind:
    """How to encode for a Cohere / NVIDIA `input_type`: queries for query types, else documents."""
    return "query" if input_type in QUERY_INPUT_TYPES else "document"


def check_truncation(truncate: bool | str | None, direction: str | None = None) -> None:
    """Refuse a request to cut texts at the start: this server cuts the end.

    Args:
        truncate: the client's `truncate` (TEI: bool; Cohere / NVIDIA: NONE, END, START).
        direction: TEI's `truncation_direction` (left or right, any case).

    Raises:
        UnsupportedInput: the client asked for the start to be cut.
    """
    if truncate == "START" or (direction or "right").lower() == "left":
        raise UnsupportedInput("texts over the model's max length are cut at the end; "
                               "cutting the start is not supported: leave truncation at its default")

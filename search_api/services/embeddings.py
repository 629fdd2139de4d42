"""Embeddings for the OpenAI-compatible API: document vectors, optionally shortened or base64."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from search_api.config import ApiSettings
from search_api.errors import InvalidDimensions, UnsupportedInput
from search_api.services.model_access import allowed_models, resolve_allowed
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.text_checks import check_text, check_texts

EncodingFormat = Literal["float", "base64"]
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
              encoding_format: EncodingFormat = "float") -> EmbeddingOutcome:
        """Embed one text or a list of texts.

        Args:
            model: an allowed model (see `models`).
            inputs: a string or a list of strings; token-id arrays are refused.
            dimensions: keep only the first N components (re-normalised), 1..model dimension.
            encoding_format: "float" lists, or "base64" of little-endian float32.

        Returns:
            The canonical model name, one embedding per input and the token count.
        """
        texts = self._texts(inputs)
        name = resolve_allowed(model, self._settings, self._collections)
        encoder = self._encoders.get(name)
        if dimensions is not None and not 1 <= dimensions <= encoder.dimension:
            raise InvalidDimensions(f"dimensions must be between 1 and {encoder.dimension} "
                                    f"for model '{name}', got {dimensions}")
        vectors = encoder.encode_batch(texts, "document").vectors
        if dimensions is not None and dimensions < encoder.dimension:
            vectors = shorten(vectors, dimensions)
        embeddings: list[list[float] | str]
        if encoding_format == "base64":
            embeddings = [to_base64(v) for v in vectors]
        else:
            embeddings = vectors.tolist()
        return EmbeddingOutcome(model=name, embeddings=embeddings,
                                prompt_tokens=sum(count_tokens(t) for t in texts))

    def models(self) -> list[str]:
        """Canonical names of the models a client may ask for, sorted."""
        return sorted(allowed_models(self._settings, self._collections))

    def _texts(self, inputs: EmbeddingInput) -> list[str]:
        if isinstance(inputs, str):
            check_text("input", inputs, self._settings)
            return [inputs]
        if any(not isinstance(item, str) for item in inputs):
            raise UnsupportedInput("'input' holds token ids; this server embeds text only: "
                                   "send a string or a list of strings")
        texts = [item for item in inputs if isinstance(item, str)]
        check_texts("input", texts, self._settings)
        return texts

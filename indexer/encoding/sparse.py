"""Sparse token weights from a sentence-transformers SparseEncoder (SPLADE-style models).

A SPLADE model (an MLM transformer followed by `SpladePooling`) maps a text to one weight per
vocabulary token; most are zero. This module loads such a model and returns, per text, the
non-zero tokens with their weights, heaviest first. Models whose output dimensions are not
vocabulary tokens (dense models, or sparse auto-encoders on top of them) are refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.encoding.encoders import BUILTIN_MODELS, UnknownModel, resolve_model_name, unknown_model_message
from storage import SemsearchError

logger = logging.getLogger(__name__)

_CONFIG = "config_sentence_transformers.json"


class NotSparseModel(SemsearchError):
    """The model loads, but does not give per-token weights (e.g. a dense embedding model)."""

    code = "not_sparse_model"
    status = 400


@dataclass(frozen=True, kw_only=True)
class TokenWeight:
    token: str
    token_id: int
    weight: float


@dataclass(frozen=True, kw_only=True)
class SparseTokens:
    """The non-zero token weights of one text, heaviest first (ties: lower token id first)."""

    weights: list[TokenWeight]
    truncated: bool
    """True when the text was longer than the model's max length and its end was not read."""
    tokens: int
    """Tokens of the text as the model's tokenizer splits it, without special tokens."""


class SparseTokenEncoder:
    """A sentence-transformers `SparseEncoder` whose dimensions are vocabulary tokens, on the CPU."""

    def __init__(self, name: str, path: str, *, allow_download: bool = False,
                 trust_remote_code: bool = False, batch_size: int = 32) -> None:
        from sentence_transformers import SparseEncoder  # heavy: import on first load only
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        _refuse_declared_dense(name, path)
        try:
            self._model = SparseEncoder(path, device="cpu", local_files_only=not allow_download,
                                        trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as exc:
            raise UnknownModel(unknown_model_message(name, str(exc))) from exc
        if not _has_token_head(self._model):
            raise NotSparseModel(
                f"model '{name}' is not a sparse token-weight model: it has no SpladePooling or "
                "SparseStaticEmbedding module (a dense embedding model, or a sparse auto-encoder "
                "whose dimensions are not tokens); use /v1/embeddings for dense vectors")
        tokenizer = getattr(self._model, "tokenizer", None)
        if tokenizer is None:
            raise NotSparseModel(f"model '{name}' has no tokenizer to name its tokens")
        self._tokenizer: Any = tokenizer
        self.name = name
        self.max_length = int(self._model.max_seq_length or 512)
        self.vocab_size = len(tokenizer)
        self._batch_size = batch_size
        prompts = self._model.prompts or {}
        self._prompt: str = prompts.get("document") or prompts.get("passage") or ""

    def encode(self, texts: Sequence[str], top_k: int | None = None) -> list[SparseTokens]:
        """Token weights of each text, as a document (the model's document prompt, if any).

        Args:
            texts: the texts, at least one.
            top_k: keep at most this many tokens per text (the heaviest); None keeps all.

        Returns:
            One `SparseTokens` per text, in order; only weights > 0, sorted descending.
        """
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        texts = list(texts)
        if not texts:
            return []
        matrix = self._model.encode_document(
            texts, batch_size=self._batch_size, convert_to_tensor=True,
            convert_to_sparse_tensor=True, show_progress_bar=False,
        )
        rows, cols, values = _coo(matrix)
        ids = self._tokenizer([self._prompt + t for t in texts], add_special_tokens=False,
                              truncation=False, verbose=False)["input_ids"]
        specials = int(self._tokenizer.num_special_tokens_to_add(pair=False))
        results = []
        for row, text_ids in enumerate(ids):
            keep = (rows == row) & (values > 0)
            row_cols, row_values = cols[keep], values[keep]
            order = np.lexsort((row_cols, -row_values))[:top_k]
            tokens = self._tokenizer.convert_ids_to_tokens(row_cols[order].tolist())
            weights = [TokenWeight(token=str(tok), token_id=int(tid), weight=float(w))
                       for tok, tid, w in zip(tokens, row_cols[order], row_values[order], strict=True)]
            results.append(SparseTokens(weights=weights, tokens=len(text_ids),
                                        truncated=len(text_ids) + specials > self.max_length))
        return results


def load_sparse_encoder(model: str, *, allow_download: bool = False, trust_remote_code: bool = False,
                        batch_size: int = 32) -> SparseTokenEncoder:
    """Load a sparse token-weight model by folder path or hub id (local cache only by default).

    Args:
        model: a sentence-transformers SparseEncoder folder, or a hub id in the local cache.
        allow_download: let a hub id missing from the cache be downloaded.
        trust_remote_code: run the model's own code.
        batch_size: texts per forward pass.

    Returns:
        The loaded encoder.

    Raises:
        UnknownModel: nothing loadable under that name.
        NotSparseModel: the model loads but gives no per-token weights (a dense model).
    """
    name = resolve_model_name(model)
    if name in BUILTIN_MODELS:
        raise NotSparseModel(f"model '{name}' is a dense embedding model, not a sparse token-weight "
                             "model; name a sentence-transformers SparseEncoder (e.g. SPLADE)")
    return SparseTokenEncoder(name, name, allow_download=allow_download,
                              trust_remote_code=trust_remote_code, batch_size=batch_size)


def _refuse_declared_dense(name: str, path: str) -> None:
    """Refuse a local folder whose sentence-transformers config names another model type.

    SparseEncoder would otherwise silently wrap a dense model in a new, untrained sparse head.
    """
    config = Path(path).expanduser() / _CONFIG
    if not config.is_file():
        return  # a hub id, or a folder without that file: the module check after loading decides
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return
    if model_type != "SparseEncoder":  # absent: saved before sentence-transformers 5, so dense
        raise NotSparseModel(f"model '{name}' is a {model_type or 'SentenceTransformer'} model, not a "
                             "sparse token-weight model (a sentence-transformers SparseEncoder "
                             "such as SPLADE)")


def _has_token_head(model: Any) -> bool:
    """True when some module's output dimensions are vocabulary tokens."""
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    return any(isinstance(m, SpladePooling | SparseStaticEmbedding) for m in model.modules())


def _coo(matrix: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices, column indices and values of a 2-D torch tensor (sparse or dense)."""
    if not matrix.is_sparse:
        matrix = matrix.to_sparse()
    matrix = matrix.coalesce().cpu()
    indices = matrix.indices().numpy()
    values = matrix.values().float().numpy()
    return indices[0], indices[1], values

"""Sparse token weights over HTTP: allowed models, loaded lazily and once, shared by requests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.encoding import UnknownModel, alias_name, resolve_model_name
from indexer.encoding.sparse import SparseTokenEncoder, SparseTokens, load_sparse_encoder
from search_api.config import ApiSettings
from search_api.services.model_access import resolve_allowed
from search_api.services.registry import CollectionRegistry
from search_api.services.text_checks import check_text, check_texts
from storage import SemsearchError


@dataclass(frozen=True, kw_only=True)
class SparseOutcome:
    model: str
    items: list[SparseTokens]
    prompt_tokens: int


class SparseRegistry:
    """Sparse encoders by canonical name, each loaded on first use; failures are remembered."""

    def __init__(self, *, allow_download: bool, trust_remote_code: bool) -> None:
        self._allow_download = allow_download
        self._trust_remote_code = trust_remote_code
        self._encoders: dict[str, SparseTokenEncoder] = {}
        self._failures: dict[str, SemsearchError] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> SparseTokenEncoder:
        """The loaded encoder of `name` (canonical); raises the load error, also on a retry."""
        with self._lock:  # one load at a time: models are large
            if name in self._failures:
                raise self._failures[name]
            if name not in self._encoders:
                try:
                    self._encoders[name] = load_sparse_encoder(
                        name, allow_download=self._allow_download,
                        trust_remote_code=self._trust_remote_code)
                except SemsearchError as exc:  # e.g. a dense model: don't load it on every request
                    self._failures[name] = exc
                    raise
            return self._encoders[name]

    def loaded(self) -> list[str]:
        return sorted(self._encoders)


class SparseService:
    """Token weights for texts with an allowed sparse model."""

    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 sparse_models: Sequence[str] = ()) -> None:
        """Args:
            settings: service settings (limits, downloads, the usual allow-list).
            collections: the open collections (their models are allowed, as for /v1/embeddings).
            sparse_models: further models a client may name (SEMSEARCH_SPARSE_MODELS).
        """
        self._settings = settings
        self._collections = collections
        self._extra: dict[str, str] = {}
        for model in sparse_models:
            canonical = resolve_model_name(model)
            self._extra[alias_name(model)] = canonical
            self._extra[canonical] = canonical
        self.registry = SparseRegistry(allow_download=settings.allow_download,
                                       trust_remote_code=settings.trust_remote_code)

    def embed(self, model: str, inputs: str | Sequence[str], top_k: int | None = None) -> SparseOutcome:
        """Token weights of one text or a list of texts.

        Args:
            model: an allowed model: SEMSEARCH_SPARSE_MODELS or anything /v1/embeddings allows.
            inputs: a string or a non-empty list of strings, within the text limits.
            top_k: keep at most this many tokens per text; None keeps every non-zero one.

        Returns:
            The canonical model name, per-text token weights and the total token count.

        Raises:
            UnknownModel: the model is not allowed or cannot be loaded.
            NotSparseModel: the model gives no per-token weights.
        """
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if isinstance(inputs, str):
            check_text("input", inputs, self._settings)
        else:
            check_texts("input", texts, self._settings)
        name = self._extra.get(alias_name(model)) or self._allowed(model)
        items = self.registry.get(name).encode(texts, top_k)
        return SparseOutcome(model=name, items=items, prompt_tokens=sum(i.tokens for i in items))

    def _allowed(self, model: str) -> str:
        try:
            return resolve_allowed(model, self._settings, self._collections)
        except UnknownModel as exc:
            configured = ", ".join(sorted(set(self._extra.values()))) or "none"
            raise UnknownModel(f"{exc.message}; sparse models (SEMSEARCH_SPARSE_MODELS): "
                               f"{configured}") from exc

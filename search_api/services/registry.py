"""Shared, lazily loaded models and open collections: one of each per process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexer.chunking import ChunkRequest
from indexer.encoding import (
    EncodedBatch,
    Encoder,
    Kind,
    load_encoder,
    parallel_calls,
    parallel_kinds,
    resolve_model_name,
)
from indexer.encoding.length_routing import LengthRoutedEncoder
from indexer.pipeline import open_collection_in
from indexer.settings import CommonSettings, RuntimeSettings
from search_api.services.batching import MicroBatcher
from search_api.services.query_cache import CachedEncoder, CacheObserver, QueryCache
from storage import CollectionInfo, CollectionUnavailable, IndexNotFound, validate_name
from storage.backend import Backend, CollectionHandle
from storage.factory import open_backend

logger = logging.getLogger(__name__)


EncodeObserver = Callable[[str, str, int, float], None]  # model, kind, batch size, seconds


class ObservedEncoder:
    """An Encoder that reports each call's batch size and duration (for /metrics)."""

    def __init__(self, inner: Encoder, observe: EncodeObserver) -> None:
        self._inner = inner
        self._observe = observe
        self.name, self.dimension, self.max_length = inner.name, inner.dimension, inner.max_length
        self.parallel_kinds = parallel_kinds(inner)
        self.parallel_calls = parallel_calls(inner)

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        started = time.perf_counter()
        batch = self._inner.encode_batch(texts, kind)
        self._observe(self.name, kind, len(texts), time.perf_counter() - started)
        return batch

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)


class EncoderRegistry:
    """Loads each model once, on first use, and shares it between requests."""

    def __init__(self, *, allow_download: bool, trust_remote_code: bool,
                 preloaded: dict[str, Encoder] | None = None,
                 observe: EncodeObserver | None = None, observe_model: EncodeObserver | None = None,
                 micro_batch: bool = True, micro_batch_wait_ms: float = 0.0,
                 micro_batch_max: int = 64,
                 query_cache_size: int = 0, observe_cache: CacheObserver | None = None,
                 runtime: RuntimeSettings | None = None) -> None:
        """Configure how models load and what wraps each of them.

        Args:
            allow_download: let a hub id be downloaded (see load_encoder).
            trust_remote_code: run a model's own code (see load_encoder).
            preloaded: already-loaded models by canonical name, shared instead of reloaded.
            observe: told of every encode call the services make (cache hits included).
            observe_model: told of every call that reaches a model (after cache and batching).
            micro_batch: share model calls between concurrent requests (see MicroBatcher).
            micro_batch_wait_ms: extra wait of a concurrent batch for more requests.
            micro_batch_max: texts per micro-batch; larger requests are encoded at once.
            query_cache_size: query embeddings kept (LRU, shared by all models); 0 turns it off.
            observe_cache: told of every query-cache lookup and store.
            runtime: encoder backend, threads and export cache (default: auto, all CPUs).
        """
        self._runtime = runtime or RuntimeSettings(backend="auto")
        self._allow_download = allow_download
        self._trust_remote_code = trust_remote_code
        self._observe = observe
        self._observe_model = observe_model
        self._micro_batch = (micro_batch, micro_batch_wait_ms, micro_batch_max)
        self._batchers: list[MicroBatcher] = []
        self.query_cache = QueryCache(query_cache_size, observe_cache)
        self._encoders: dict[str, Encoder] = {
            name: self._observed(encoder) for name, encoder in (preloaded or {}).items()}
        self._lock = threading.Lock()
        self._warming: list[threading.Thread] = []

    def _observed(self, encoder: Encoder) -> Encoder:
        """`encoder` behind metrics, the query cache and micro-batching, as configured."""
        if self._observe_model:
            encoder = ObservedEncoder(encoder, self._observe_model)
        enabled, wait_ms, max_batch = self._micro_batch
        if enabled:
            batcher = MicroBatcher(encoder, wait_ms=wait_ms, max_batch=max_batch)
            self._batchers.append(batcher)
            encoder = batcher
        if self.query_cache.capacity > 0:
            encoder = CachedEncoder(encoder, self.query_cache)
        return ObservedEncoder(encoder, self._observe) if self._observe else encoder

    def get(self, model: str) -> Encoder:
        name = resolve_model_name(model)
        encoder = self._encoders.get(name)
        if encoder is not None:
            return encoder
        with self._lock:  # one load at a time: models are large
            if name not in self._encoders:
                logger.info("loading model %s", name)
                encoder = load_encoder(
                    name, allow_download=self._allow_download,
                    trust_remote_code=self._trust_remote_code, backend=self._runtime.backend,
                    threads=self._runtime.threads, cache_dir=self._runtime.cache_dir,
                    device=self._runtime.device,
                )
                if isinstance(encoder, LengthRoutedEncoder):  # no request waits for the long route
                    self._warming.append(encoder.load_long_in_background())
                self._encoders[name] = self._observed(encoder)
            return self._encoders[name]

    def loaded(self) -> list[str]:
        return sorted(self._encoders)

    def wait_for_warm_up(self, timeout: float = 600.0) -> None:
        """Wait until the models' background loads (auto's long-text route) have finished."""
        for thread in self._warming:
            thread.join(timeout)

    def close(self) -> None:
        """Send later calls straight to the models (queued requests are still answered)."""
        for batcher in self._batchers:
            batcher.close()


class CollectionRegistry:
    """Opens each collection once; collections created by other processes are found on disk.

    Collections live in `backend` (default: FAISS + SQLite folders in `data_dir`); the
    registry owns it and closes it with itself.
    """

    def __init__(self, data_dir: Path, backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.backend = backend or open_backend("faiss", data_dir=data_dir)
        self._open: dict[str, CollectionHandle] = {}
        self._failed: dict[str, str] = {}  # collections that could not be opened, and why
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> CollectionRegistry:
        """A registry on the storage the settings name (SEMSEARCH_STORAGE, SEMSEARCH_MILVUS_URI)."""
        return cls(settings.data_dir, settings.open_storage())

    def names(self) -> list[str]:
        return self.backend.names()

    def info(self, name: str) -> CollectionInfo:
        """Model, size and generation of a collection, read fresh from its storage."""
        return self.backend.info(name)

    def get(self, name: str) -> CollectionHandle:
        """The open collection, reopened if its folder was deleted or recreated meanwhile.

        A collection whose storage was found damaged (CollectionUnavailable) is tried again
        on each request, so that restoring its folder brings it back without a restart.
        """
        collection = self._open.get(name)
        if collection is not None and collection.unavailable is None \
                and not collection.replaced_on_disk():
            return collection
        validate_name(name)
        with self._lock:
            current = self._open.get(name)
            if current is not None and (current.unavailable is not None
                                        or current.replaced_on_disk()):
                if current.unavailable is not None:
                    self._failed[name] = current.unavailable  # until a reopen succeeds
                current.close()
                del self._open[name]
            if name not in self._open:
                names = self.names()
                if name not in names:
                    self._failed.pop(name, None)  # removed, not damaged
                    listed = ", ".join(names[:20]) or "none"  # clients create collections: cap it
                    more = f", and {len(names) - 20} more" if len(names) > 20 else ""
                    raise IndexNotFound(f"collection '{name}' does not exist; existing: "
                                        f"{listed}{more}")
                try:
                    self._open[name] = self.backend.open(name)
                except CollectionUnavailable as exc:
                    self._failed[name] = exc.message
                    raise
                self._failed.pop(name, None)
            return self._open[name]

    def unavailable(self) -> dict[str, str]:
        """Collections refused because their storage is damaged or missing, with the reason."""
        found = dict(self._failed)
        found.update({name: handle.unavailable for name, handle in list(self._open.items())
                      if handle.unavailable is not None})
        return found

    def health(self) -> dict[str, tuple[bool, int]]:
        """{name: (available, index rebuilds)} of the collections opened or tried, for /metrics."""
        health = {name: (False, 0) for name in self._failed}
        health.update({name: (handle.unavailable is None, handle.rebuilds)
                       for name, handle in list(self._open.items())})
        return health

    def get_or_create(self, name: str, encoder: Encoder,
                      chunking: ChunkRequest | None = None) -> CollectionHandle:
        validate_name(name)
        with self._lock:
            if name not in self._open:
                # Made over HTTP: passages where the storage keeps them, unless asked otherwise.
                self._open[name] = open_collection_in(self.backend, name, encoder,
                                                      chunking or ChunkRequest())
        return self.get(name)

    def loaded(self) -> list[str]:
        return sorted(self._open)

    def sizes(self) -> dict[str, tuple[int, int]]:
        return {name: (c.count, c.generation) for name, c in list(self._open.items())}

    def close(self) -> None:
        with self._lock:
            for collection in self._open.values():
                collection.close()
            self._open.clear()
            self.backend.close()

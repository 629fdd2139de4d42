"""Shared, lazily loaded models and open collections: one of each per process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexer.encoding import EncodedBatch, Encoder, Kind, load_encoder, resolve_model_name
from indexer.pipeline import open_collection
from storage import Collection, IndexNotFound, list_collections, validate_name

logger = logging.getLogger(__name__)


EncodeObserver = Callable[[str, str, int, float], None]  # model, kind, batch size, seconds


class ObservedEncoder:
    """An Encoder that reports each call's batch size and duration (for /metrics)."""

    def __init__(self, inner: Encoder, observe: EncodeObserver) -> None:
        self._inner = inner
        self._observe = observe
        self.name, self.dimension, self.max_length = inner.name, inner.dimension, inner.max_length

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        started = time.perf_counter()
        batch = self._inner.encode_batch(texts, kind)
        self._observe(self.name, kind, len(texts), time.perf_counter() - started)
        return batch

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors


class EncoderRegistry:
    """Loads each model once, on first use, and shares it between requests."""

    def __init__(self, *, allow_download: bool, trust_remote_code: bool,
                 preloaded: dict[str, Encoder] | None = None,
                 observe: EncodeObserver | None = None) -> None:
        self._allow_download = allow_download
        self._trust_remote_code = trust_remote_code
        self._observe = observe
        self._encoders: dict[str, Encoder] = {
            name: self._observed(encoder) for name, encoder in (preloaded or {}).items()}
        self._lock = threading.Lock()

    def _observed(self, encoder: Encoder) -> Encoder:
        return ObservedEncoder(encoder, self._observe) if self._observe else encoder

    def get(self, model: str) -> Encoder:
        name = resolve_model_name(model)
        encoder = self._encoders.get(name)
        if encoder is not None:
            return encoder
        with self._lock:  # one load at a time: models are large
            if name not in self._encoders:
                logger.info("loading model %s", name)
                self._encoders[name] = self._observed(load_encoder(
                    name, allow_download=self._allow_download,
                    trust_remote_code=self._trust_remote_code,
                ))
            return self._encoders[name]

    def loaded(self) -> list[str]:
        return sorted(self._encoders)


class CollectionRegistry:
    """Opens each collection once; collections created by other processes are found on disk."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list_collections(self.data_dir)

    def get(self, name: str) -> Collection:
        """The open collection, reopened if its folder was deleted or recreated meanwhile."""
        collection = self._open.get(name)
        if collection is not None and not collection.replaced_on_disk():
            return collection
        validate_name(name)
        with self._lock:
            current = self._open.get(name)
            if current is not None and current.replaced_on_disk():
                current.close()
                del self._open[name]
            if name not in self._open:
                if name not in self.names():
                    raise IndexNotFound(
                        f"collection '{name}' does not exist; existing: "
                        f"{', '.join(self.names()) or 'none'}"
                    )
                self._open[name] = Collection.open(self.data_dir, name)
            return self._open[name]

    def get_or_create(self, name: str, encoder: Encoder) -> Collection:
        validate_name(name)
        with self._lock:
            if name not in self._open:
                self._open[name] = open_collection(self.data_dir, name, encoder)
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

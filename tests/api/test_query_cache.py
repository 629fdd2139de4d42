"""The LRU cache of query embeddings: hits equal fresh encodes, callers cannot corrupt it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from indexer.encoding import Encoder, FakeEncoder
from search_api.config import ApiSettings
from search_api.services.query_cache import MAX_CACHED_CHARS, CachedEncoder, QueryCache
from search_api.services.registry import EncoderRegistry
from tests.api.test_microbatch import Recording
from tests.api.test_security_and_metrics import metric_samples
from tests.conftest import make_client


def test_cache_hit_returns_the_same_vector_and_counts(minilm: Encoder) -> None:
    recording = Recording(minilm)
    cache = QueryCache(8)
    encoder = CachedEncoder(recording, cache)
    first = encoder.encode_batch(["how do I bake bread", "train timetables"], "query")
    second = encoder.encode_batch(["train timetables", "new query", "how do I bake bread"], "query")
    # The same calls the cache made, made directly (a vector may depend on its batch mates).
    np.testing.assert_allclose(first.vectors, minilm.encode(["how do I bake bread", "train timetables"],
                                                            "query"), atol=1e-5)
    np.testing.assert_allclose(second.vectors[1], minilm.encode(["new query"], "query")[0], atol=1e-5)
    np.testing.assert_array_equal(second.vectors, [first.vectors[1], second.vectors[1], first.vectors[0]])
    assert recording.calls == [("query", 2), ("query", 1)]  # only the new query was encoded
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.capacity) == (2, 3, 3, 8)


def test_callers_cannot_corrupt_the_cache(minilm: Encoder) -> None:
    cache = QueryCache(4)
    encoder = CachedEncoder(minilm, cache)
    vectors = encoder.encode(["cats"], "query")
    vectors[:] = 0  # the caller's copy, not the cache's
    again = encoder.encode(["cats"], "query")
    np.testing.assert_allclose(again, minilm.encode(["cats"], "query"), atol=1e-5)
    found = cache.get(minilm.name, "query", "cats")
    assert found is not None
    with pytest.raises(ValueError):
        found[0][0] = 1.0  # what the cache hands out is read-only


def test_documents_repeats_and_long_texts(minilm: Encoder) -> None:
    recording = Recording(minilm)
    cache = QueryCache(4)
    encoder = CachedEncoder(recording, cache)
    encoder.encode(["a document"], "document")
    encoder.encode(["a document"], "document")
    assert cache.stats().entries == 0 and recording.calls == [("document", 1), ("document", 1)]
    twice = encoder.encode_batch(["same", "same"], "query")  # one text, encoded once
    assert recording.calls[-1] == ("query", 1)
    np.testing.assert_array_equal(twice.vectors[0], twice.vectors[1])
    long = "x " * (MAX_CACHED_CHARS // 2 + 1)  # too long to cache, and over 256 tokens
    cut = encoder.encode_batch([long], "query")
    assert cut.truncated == [True] and cache.get(minilm.name, "query", long) is None


def test_lru_eviction_and_disabled_cache() -> None:
    cache = QueryCache(2)
    vector = np.ones(3, np.float32)
    cache.put("m", "query", "a", vector, False)
    cache.put("m", "query", "b", vector, False)
    assert cache.get("m", "query", "a") is not None  # "a" is now the most recent
    cache.put("m", "query", "c", vector, True)
    assert cache.get("m", "query", "b") is None
    assert cache.get("m", "query", "c") is not None and cache.get("other", "query", "c") is None
    off = QueryCache(0)
    off.put("m", "query", "a", vector, False)
    assert off.get("m", "query", "a") is None and off.stats().entries == 0
    registry = EncoderRegistry(allow_download=False, trust_remote_code=False,
                               preloaded={"fake": FakeEncoder(name="fake")}, query_cache_size=0)
    assert not isinstance(registry.get("fake"), CachedEncoder)
    with pytest.raises(ValueError):
        QueryCache(-1)


def test_cache_is_thread_safe() -> None:
    """Plumbing only: many threads reading and writing a small cache keep it consistent."""
    cache = QueryCache(16)
    errors: list[Exception] = []

    def work(seed: int) -> None:
        try:
            for i in range(2000):
                text = f"q{(seed * 31 + i) % 40}"
                found = cache.get("m", "query", text)
                if found is None:
                    cache.put("m", "query", text, np.full(4, len(text), np.float32), False)
                else:
                    assert found[0][0] == len(text)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.stats()
    assert not errors and stats.entries == 16 and stats.hits + stats.misses == 8 * 2000


def test_repeated_search_is_served_from_the_cache(data_dir: Path, minilm: Encoder) -> None:
    settings = ApiSettings(data_dir=data_dir, default_collection="docs", query_cache_size=16)
    with make_client(settings, minilm) as client:
        first = client.post("/collections/docs/search", json={"query": "sourdough bread"}).json()
        second = client.post("/collections/docs/search", json={"query": "sourdough bread"}).json()
        samples = metric_samples(client.get("/metrics").text)
    assert first["hits"] == second["hits"] and first["hits"][0]["id"] == "bake-1"
    assert samples[("semsearch_query_cache_hits_total", ())] == 1
    assert samples[("semsearch_query_cache_misses_total", ())] == 1
    assert samples[("semsearch_query_cache_entries", ())] == 1
    assert samples[("semsearch_model_batch_size_count",
                    (("kind", "query"), ("model", "all-MiniLM-L6-v2")))] == 1

"""ONNX models run one thread per call, calls side by side: same vectors, no lock, capped batches."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexer.encoding import MINILM, backends, load_encoder, parallel_calls, parallel_kinds
from indexer.encoding.backends import OnnxEncoder
from indexer.encoding.onnx_model import length_sorted_batches

TOPICS = ["bread baking", "football results", "spiral galaxies", "python code", "tax returns"]


def test_batches_are_capped_by_padded_tokens_as_well_as_texts() -> None:
    lengths = [10, 300, 90, 10, 10, 10, 10, 100]
    batches = [list(b) for b in length_sorted_batches(lengths, batch_size=4, max_tokens=200)]
    # Longest first; each batch holds at most 200 // (its longest) texts, at most 4.
    assert batches == [[1], [7, 2], [0, 3, 4, 5], [6]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    # Without a token cap only the count limits a batch.
    assert [len(b) for b in length_sorted_batches(lengths, batch_size=4)] == [4, 4]


@pytest.fixture(scope="module")
def int8() -> OnnxEncoder:
    encoder = load_encoder(MINILM, backend="onnx-int8", threads=2)
    assert isinstance(encoder, OnnxEncoder)
    return encoder


def test_concurrent_calls_run_unlocked_and_match_calls_one_at_a_time(int8: OnnxEncoder) -> None:
    texts = [f"{topic} question number {i}" for i, topic in enumerate(TOPICS * 4)]
    alone = [int8.encode_batch([t], "query").vectors[0] for t in texts]
    barrier = threading.Barrier(8)
    inside, most_inside, count_lock = 0, 0, threading.Lock()
    run = int8._run

    def counting_run(batch_ids: list[list[int]]) -> np.ndarray:
        nonlocal inside, most_inside
        with count_lock:
            inside += 1
            most_inside = max(most_inside, inside)
        try:
            return run(batch_ids)
        finally:
            with count_lock:
                inside -= 1

    def encode(i: int) -> np.ndarray:
        if i < 8:
            barrier.wait()
        return int8.encode_batch([texts[i]], "query").vectors[0]

    int8._run = counting_run  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(encode, range(len(texts))))
    finally:
        del int8._run
    assert most_inside > 1  # model calls overlapped: no lock serialised them
    for mine, reference in zip(together, alone, strict=True):
        np.testing.assert_allclose(mine, reference, atol=1e-6)


def test_a_large_call_spread_over_workers_equals_one_worker(int8: OnnxEncoder) -> None:
    texts = [f"{topic} " * (1 + i % 40) for i, topic in enumerate(TOPICS * 20)]
    spread = int8.encode_batch(texts, "document")
    single = load_encoder(MINILM, backend="onnx-int8", threads=1).encode_batch(texts, "document")
    np.testing.assert_allclose(spread.vectors, single.vectors, atol=1e-6)
    assert spread.truncated == single.truncated


def test_which_kinds_run_side_by_side(int8: OnnxEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parallel_kinds(int8) == {"query", "document"}
    assert parallel_calls(int8) == 2  # one call per thread it was given
    # With AMX, `auto` may send documents to torch's long-text route, which keeps its lock.
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert parallel_kinds(load_encoder(MINILM, backend="auto")) <= {"query"}
    assert parallel_kinds(load_encoder(MINILM, backend="torch")) == frozenset()


def test_a_call_of_a_few_texts_gives_every_worker_a_batch(int8: OnnxEncoder) -> None:
    sizes: list[int] = []
    run = int8._run

    def recording_run(batch_ids: list[list[int]]) -> np.ndarray:
        sizes.append(len(batch_ids))
        return run(batch_ids)

    int8._run = recording_run  # type: ignore[method-assign]
    try:
        int8.encode_batch(["one short text"], "query")
        assert sizes == [1]
        sizes.clear()
        int8.encode_batch([f"{topic} question" for topic in TOPICS[:4]], "query")
    finally:
        del int8._run
    assert sorted(sizes) == [2, 2]  # two workers, two batches: both cores work on four texts

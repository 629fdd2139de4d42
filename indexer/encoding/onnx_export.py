"""ONNX export and int8 quantisation of sentence-transformers models, cached on disk.

The export does not use optimum (its exporter breaks with transformers 5.x): the Hugging Face
transformer inside the sentence-transformers folder is exported with `torch.onnx.export`
(TorchScript exporter, `dynamo=False`, so no onnxscript is needed), and pooling and
normalisation are done in numpy by the caller (indexer.encoding.backends). int8 models come from
onnxruntime's `quantize_dynamic`.

Every artefact is built in a temporary folder next to its final place and renamed into it,
so a crash or two processes exporting at once never leave a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OPSET = 17
MODEL_FILE = "model.onnx"
TRANSFORMER_TYPES = ("sentence_transformers.models.Transformer",
                     "sentence_transformers.models.transformer.Transformer")
POOLING_TYPES = ("sentence_transformers.models.Pooling",
                 "sentence_transformers.models.pooling.Pooling")
NORMALIZE_TYPES = ("sentence_transformers.models.Normalize",
                   "sentence_transformers.models.normalize.Normalize")
# Pooling modes that numpy pooling implements, in sentence-transformers' concatenation order.
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens", "lasttoken")
# Files whose content decides the exported model (weights, architecture, tokenizer-free).
_HASHED = re.compile(r".*\.(safetensors|bin|json)$")


class UnsupportedForOnnx(ValueError):
    """The model folder has a layout the ONNX backends cannot reproduce exactly."""


@dataclass(frozen=True, kw_only=True)
class StModelLayout:
    """What a sentence-transformers folder needs beyond the transformer: pooling, length, prompts."""

    transformer_dir: Path
    pooling_modes: tuple[str, ...]
    max_seq_length: int
    do_lower_case: bool
    prompts: dict[str, str]


def read_layout(model_dir: Path) -> StModelLayout:
    """Read modules.json, the pooling config, sentence_bert_config.json and prompts.

    Raises:
        UnsupportedForOnnx: for modules other than Transformer → Pooling → (Normalize), or a
            pooling mode numpy pooling does not implement.
    """
    modules_file = model_dir / "modules.json"
    if not modules_file.exists():
        raise UnsupportedForOnnx(f"{model_dir} has no modules.json (not a sentence-transformers folder)")
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    types = [m.get("type", "") for m in modules]
    if len(modules) not in (2, 3) or types[0] not in TRANSFORMER_TYPES or types[1] not in POOLING_TYPES \
            or (len(types) == 3 and types[2] not in NORMALIZE_TYPES):
        raise UnsupportedForOnnx(f"modules {types} are not Transformer, Pooling[, Normalize]")
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    enabled = {k.removeprefix("pooling_mode_") for k, v in pooling.items()
               if k.startswith("pooling_mode_") and v is True}
    unknown = enabled - set(POOLING_MODES)
    if unknown or not enabled:
        raise UnsupportedForOnnx(f"pooling modes {sorted(enabled)} are not supported by the ONNX backends")
    if pooling.get("include_prompt", True) is False:
        raise UnsupportedForOnnx("pooling that excludes the prompt is not supported by the ONNX backends")
    transformer_dir = model_dir / modules[0].get("path", "")
    st_config: dict[str, Any] = {}
    for name in ("sentence_bert_config.json", "sentence_transformers_config.json"):
        if (transformer_dir / name).exists():
            st_config = json.loads((transformer_dir / name).read_text(encoding="utf-8"))
            break
    prompts: dict[str, str] = {}
    if (model_dir / "config_sentence_transformers.json").exists():
        cfg = json.loads((model_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        prompts = {k: v for k, v in (cfg.get("prompts") or {}).items() if v}
    return StModelLayout(
        transformer_dir=transformer_dir,
        pooling_modes=tuple(m for m in POOLING_MODES if m in enabled),
        max_seq_length=int(st_config.get("max_seq_length") or 512),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        prompts=prompts,
    )


def default_cache_dir() -> Path:
    """`~/.cache/semsearch`: the cache of callers that pass none; exports go to its `onnx/` folder.

    Entry points pass `RuntimeSettings.cache_dir` (SEMSEARCH_CACHE_DIR) down instead: model
    code never reads settings itself.
    """
    return Path.home() / ".cache" / "semsearch"


def fingerprint(model_dir: Path) -> str:
    """sha256 (first 16 hex digits) of the folder's weight and config files, names included."""
    digest = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and _HASHED.match(p.name))
    for path in files:
        digest.update(str(path.relative_to(model_dir)).encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def export_dir(model_dir: Path, model_name: str, cache_dir: Path | None = None) -> Path:
    """Where the exports of this model live: `<cache>/onnx/<model-name>-<hash of model files>/`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model_name).name or model_name).strip("._") or "model"
    return (cache_dir or default_cache_dir()) / "onnx" / f"{safe}-{fingerprint(model_dir)}"


def ensure_onnx(model_dir: Path, model_name: str, *, quantized: bool, cache_dir: Path | None = None,
                trust_remote_code: bool = False, reduce_range: bool = False) -> Path:
    """The path of the cached ONNX model (fp32, or dynamically quantised int8), exporting once.

    Args:
        model_dir: the sentence-transformers folder.
        model_name: the name shown in the notice and used in the cache folder's name.
        quantized: return the int8 model (built from the fp32 one).
        cache_dir: cache root; default `~/.cache/semsearch`.
        trust_remote_code: let transformers run the model's own code while exporting.
        reduce_range: quantise weights to 7 bits, for CPUs without VNNI (see _quantize).

    Returns:
        Path to `model.onnx` inside `<export_dir>/fp32`, `/int8` or `/int8-rr` (reduced range).
    """
    base = export_dir(model_dir, model_name, cache_dir)
    fp32 = base / "fp32" / MODEL_FILE
    if not fp32.exists():
        _notice(f"exporting {model_name} to ONNX (one time) → {fp32.parent}")
        layout = read_layout(model_dir)
        _build_atomically(fp32.parent, lambda tmp: _export(layout.transformer_dir, tmp / MODEL_FILE,
                                                           trust_remote_code))
    if not quantized:
        return fp32
    int8 = base / ("int8-rr" if reduce_range else "int8") / MODEL_FILE
    if not int8.exists():
        _notice(f"quantising {model_name} to ONNX int8 (one time) → {int8.parent}")
        _build_atomically(int8.parent, lambda tmp: _quantize(fp32, tmp / MODEL_FILE, reduce_range))
    return int8


def _notice(message: str) -> None:
    """One line on stderr (a CLI user must see why the first run pauses), also logged."""
    logger.info(message)
    if not logging.getLogger().handlers:  # no logging configured: still tell the user
        sys.stderr.write(message + "\n")


def _build_atomically(target: Path, build: Callable[[Path], None], marker: str = MODEL_FILE) -> None:
    """Run `build(tmp)` in a temp folder beside `target`, then rename it into place.

    If another process finished first (`target / marker` exists), its complete copy is kept
    and ours is dropped.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / marker).exists():
                raise
            logger.info("another process exported %s first; using its copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export(transformer_dir: Path, out: Path, trust_remote_code: bool) -> None:
    """torch.onnx.export of the bare transformer: token ids in, last hidden state out."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir))
    # A throwaway model in eager attention: the exporter's tracing mutates module state, so this
    # copy must never be used for encoding; eager attention traces to plain MatMul/Softmax ops.
    model = AutoModel.from_pretrained(str(transformer_dir), trust_remote_code=trust_remote_code,
                                      attn_implementation="eager", dtype=torch.float32).eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in tokenizer.model_input_names]
    sample = tokenizer(["a short one", "a somewhat longer example sentence"], padding=True,
                       return_tensors="pt")

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state  # type: ignore[no-any-return]

    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    # The tracer warns that transformers' padding check becomes a constant: for an encoder the
    # key length always equals the mask length, so the constant is right for every input (the
    # tests compare ONNX and torch vectors over mixed lengths). The one-line notice suffices.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Wrapper(model), tuple(sample[n] for n in names), str(out),
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)


def _quantize(source: Path, out: Path, reduce_range: bool) -> None:
    """Dynamic int8 quantisation of the weight MatMuls (activations are quantised at run time).

    Signed int8 weights with uint8 activations are onnxruntime's fast x86 path. Weights are
    quantised per output channel: per tensor, all-MiniLM-L6-v2 fell to cosine 0.94 to fp32.
    Without VNNI, the AVX2 kernel adds u8×s8 pairs in int16, which can saturate; 7-bit weights
    (`reduce_range`) keep every pair sum in range (onnxruntime's advice for such CPUs).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime's quantiser logs a line per tensor (INFO) and advice to pre-process the graph
    # (meant for static quantisation) on the root logger: noise under our one-line notice.
    root = logging.getLogger()
    advice = _QuietQuantizer()
    root.addFilter(advice)
    try:
        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=reduce_range, op_types_to_quantize=["MatMul"])
    finally:
        root.removeFilter(advice)


class _QuietQuantizer(logging.Filter):
    """Drops the root logger's INFO records and the pre-processing advice (root logger only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING \
            and not record.getMessage().startswith("Please consider to run pre-processing")

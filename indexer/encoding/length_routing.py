"""`auto` on CPUs with bf16 matrix units: short texts on ONNX int8, long texts on torch bf16.

On such CPUs neither backend wins everywhere. ONNX int8 has the lower cost per call and per
small matrix, so it is the faster one on queries and short sentences, and it degrades gently
when the cores are shared; torch bf16 (AMX) is several times faster on long passages. Each
document goes to the backend that is faster at its token count: measured with
`scripts/bench_routing.py` (docs/performance.md), the two were even at about 35-65 tokens for
all-MiniLM-L6-v2 and 25-45 for multilingual-e5-small on a 2-core Sapphire Rapids. Queries
always take the int8 route: they come one or a few at a time, where a bf16 call costs several
times an int8 one at any length. Both routes are the same model, whose vectors agree to cosine
~0.99 (the precedent of every int8 backend), so a collection may hold vectors of both.

The bf16 model, and with it torch, costs seconds to load. It is loaded once LONG_TEXTS_TO_LOAD
long texts have come (until then long texts take the int8 route too), so a bulk job of short
texts never imports torch; a server starts loading it in the background as soon as the
model is loaded, so that no request waits for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from indexer.encoding.encoders import (
    EncodedBatch,
    Encoder,
    Kind,
    _EncoderBase,
    parallel_calls,
    parallel_kinds,
)

logger = logging.getLogger(__name__)

# Texts of at most this many tokens (prompt and special tokens included) take the int8 route.
SHORT_TOKENS = 32
# Loading the bf16 route costs seconds (importing torch, loading the model): it is loaded once
# this many long texts have come (the first ones take the int8 route, which runs any length,
# only slower), so that a bulk job of short texts with a few long ones never pays for it.
LONG_TEXTS_TO_LOAD = 16


class TokenizingEncoder(Encoder, Protocol):
    """An encoder that can tokenize once and encode the ids (indexer.encoding.backends.OnnxEncoder)."""

    def tokenize(self, texts: Sequence[str], kind: Kind) -> tuple[list[list[int]], list[bool]]: ...

    def encode_tokens(self, ids: list[list[int]], truncated: list[bool]) -> EncodedBatch: ...


class LengthRoutedEncoder(_EncoderBase):
    """Encodes texts of up to `short_tokens` tokens with `short`, longer ones with a lazy `long`."""

    def __init__(self, short: TokenizingEncoder, load_long: Callable[[], Encoder], *,
                 long_backend: str, short_tokens: int = SHORT_TOKENS,
                 long_texts_to_load: int = LONG_TEXTS_TO_LOAD) -> None:
        """Route between two backends of one model.

        Args:
            short: the backend for short texts, loaded already.
            load_long: loads the backend for long texts (called once, on first need).
            long_backend: its name, for `backend` and the log.
            short_tokens: the longest text, in tokens, that takes the short route.
            long_texts_to_load: long texts seen (over all calls) that make it load `long`
                (see LONG_TEXTS_TO_LOAD); once loaded, every long text takes the long route.
        """
        super().__init__()
        self._short = short
        self._load_long = load_long
        self._long: Encoder | None = None
        self._long_lock = threading.Lock()
        self._short_tokens = short_tokens
        self._long_texts_to_load = long_texts_to_load
        self._long_texts_seen = 0
        self.name, self.dimension, self.max_length = short.name, short.dimension, short.max_length
        # Queries only ever take the short route (see _encode); documents may load the long one.
        self.parallel_kinds = parallel_kinds(short) & {"query"}
        self.parallel_calls = parallel_calls(short)
        short_backend = getattr(short, "backend", "short")
        self.backend = f"auto ({short_backend} up to {short_tokens} tokens, {long_backend} above)"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._short.count_tokens(texts)

    def _encode(self, texts: list[str], kind: Kind) -> EncodedBatch:
        ids, truncated = self._short.tokenize(texts, kind)
        if kind == "query":  # one or a few at a time: int8's lower cost per call wins at any length
            return self._short.encode_tokens(ids, truncated)
        long_rows = [i for i, row in enumerate(ids) if len(row) > self._short_tokens]
        if self._long is None and long_rows:
            self._long_texts_seen += len(long_rows)
            if self._long_texts_seen < self._long_texts_to_load:
                long_rows = []  # not yet worth loading the long route
        if not long_rows:
            return self._short.encode_tokens(ids, truncated)
        vectors = np.zeros((len(texts), self.dimension), np.float32)
        short_rows = sorted(set(range(len(texts))) - set(long_rows))
        if short_rows:
            vectors[short_rows] = self._short.encode_tokens(
                [ids[i] for i in short_rows], [truncated[i] for i in short_rows]).vectors
        vectors[long_rows] = self._long_encoder().encode([texts[i] for i in long_rows], kind)
        return EncodedBatch(vectors=vectors, truncated=truncated)

    def load_long_in_background(self) -> threading.Thread:
        """Start loading the long-text backend now, so that no request waits seconds for it.

        For servers: a request with the first long text would otherwise pay for importing torch
        and loading the model. A failure is logged; the next long text tries again and gets it.

        Returns:
            The loading thread (join it to wait for the load).
        """
        thread = threading.Thread(target=self._load_long_quietly, name=f"load-long-{self.name}",
                                  daemon=True)
        thread.start()
        return thread

    def _load_long_quietly(self) -> None:
        try:
            self._long_encoder()
        except Exception:  # not swallowed: the next long text retries and raises it to its caller
            logger.exception("%s: loading the long-text backend failed", self.name)

    def _long_encoder(self) -> Encoder:
        with self._long_lock:
            if self._long is None:
                logger.info("%s: loading the backend for texts over %d tokens",
                            self.name, self._short_tokens)
                long = self._load_long()
                if long.dimension != self.dimension:
                    raise RuntimeError(f"{self.name}: backends disagree on the dimension "
                                       f"({long.dimension} vs {self.dimension})")
                self._long = long
            return self._long

"""Adaptive micro-batching: requests that arrive while the model is busy share its next call.

Routes are sync functions run in Starlette's thread pool. A call that finds the model idle is
encoded at once in its own thread: a lone request never waits and never changes threads. Calls
that arrive while the model is busy queue up; when the running call ends, the oldest queued
caller is promoted and encodes every queued request (up to `max_batch` texts) in one model call,
then hands over to the next queued caller in turn. Batches therefore grow exactly as fast as
requests pile up: one client pays nothing, 32 clients share model calls (a model call costs much
more than the per-text work for short queries). An optional `wait_ms` lets a promoted caller wait
a little longer for more company; it never applies to a request that arrived alone.

Queries and documents queue separately. For the kinds an encoder runs side by side
(onnxruntime: one thread per call, see indexer.encoding.onnx_model) it gets as many running
calls as it runs at once, one per core: requests start at once while a core is free and
queue only when every core is busy; other kinds run one call at a time.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from indexer.encoding import EncodedBatch, Encoder, Kind, parallel_calls, parallel_kinds

logger = logging.getLogger(__name__)


class MicroBatchWorkerStopped(RuntimeError):
    """A shared model call ended without answering a request (a bug, never the client's fault)."""


@dataclass(kw_only=True)
class _Request:
    texts: list[str]
    kind: Kind
    answered: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set instead of an answer: this caller now encodes the queue
    result: EncodedBatch | None = None
    error: BaseException | None = None

    def answer(self, result: EncodedBatch | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.answered.set()

    def promote(self) -> None:
        self.lead = True
        self.answered.set()


@dataclass(kw_only=True)
class _Lane:
    """The queue of one kind of text: callers encoding now, and callers waiting for a slot."""

    slots: int
    running: int = 0
    pending: collections.deque[_Request] = field(default_factory=collections.deque)


class MicroBatcher:
    """An Encoder that lets concurrent calls to `inner` share model calls (see the module doc).

    Calls of `max_batch` texts or more go straight to `inner` (a large request is a batch
    already); so do calls after `close()`. Errors of a shared batch are retried per request, so
    that one caller's bad input fails only that caller.
    """

    def __init__(self, inner: Encoder, *, max_batch: int, wait_ms: float = 0.0) -> None:
        """Wrap `inner`.

        Args:
            inner: the encoder to call (it serialises calls with its own lock).
            max_batch: texts per shared call; calls this large bypass the queue.
            wait_ms: extra ms a promoted caller waits for more requests (0: none).
        """
        if wait_ms < 0 or max_batch < 1:
            raise ValueError("micro-batching needs wait_ms >= 0 and max_batch >= 1")
        self._inner = inner
        # Each kind queues on its own: an encoder that runs one kind's calls side by side gets
        # as many of those running at once as it runs; every other kind gets one at a time.
        side_by_side = parallel_kinds(inner)
        self._lanes: dict[Kind, _Lane] = {
            kind: _Lane(slots=parallel_calls(inner) if kind in side_by_side else 1)
            for kind in ("query", "document")}
        self.name, self.dimension, self.max_length = inner.name, inner.dimension, inner.max_length
        self._wait_s = wait_ms / 1000.0
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        texts = list(texts)
        if not texts or len(texts) >= self._max_batch or self._closing.is_set():
            return self._inner.encode_batch(texts, kind)
        request = _Request(texts=texts, kind=kind)
        lane = self._lanes[kind]
        with self._lock:
            queued = lane.running >= lane.slots
            if queued:
                lane.pending.append(request)
            else:
                lane.running += 1
        if queued:
            request.answered.wait()
            if not request.lead:
                return _outcome(request)
            request.answered.clear()  # promoted: from here on it waits for its own batch's answer
            if self._wait_s:
                self._closing.wait(self._wait_s)  # close() cuts the wait short
        self._lead(request, lane)
        return _outcome(request)

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

    def close(self, timeout: float = 30.0) -> None:
        """Later calls encode directly; queued requests are still answered by their batch."""
        self._closing.set()

    def _lead(self, first: _Request, lane: _Lane) -> None:
        """Encode `first` and what is queued behind it, then promote the next queued caller."""
        batch = [first]
        try:
            with self._lock:
                count = len(first.texts)
                while lane.pending and count + len(lane.pending[0].texts) <= self._max_batch:
                    batch.append(lane.pending.popleft())
                    count += len(batch[-1].texts)
            self._encode(batch)
        finally:
            with self._lock:
                if lane.pending:
                    lane.pending.popleft().promote()
                else:
                    lane.running -= 1

    def _encode(self, batch: list[_Request]) -> None:
        try:
            for kind in ("query", "document"):
                group = [r for r in batch if r.kind == kind]
                if group:
                    self._encode_group(group, kind)
        finally:
            # Only reached unanswered on a BaseException: never leave a caller blocked.
            for request in batch:
                if not request.answered.is_set():
                    request.answer(error=MicroBatchWorkerStopped("encode interrupted"))

    def _encode_group(self, group: list[_Request], kind: Kind) -> None:
        texts = [text for request in group for text in request.texts]
        try:
            encoded = self._inner.encode_batch(texts, kind)
        except Exception as exc:  # handed to the callers, not swallowed
            if len(group) == 1:
                group[0].answer(error=exc)
                return
            logger.info("shared batch of %d requests failed (%s); retrying them one by one",
                        len(group), exc)
            for request in group:
                self._encode_alone(request)
            return
        start = 0
        for request in group:
            end = start + len(request.texts)
            request.answer(EncodedBatch(vectors=encoded.vectors[start:end],
                                        truncated=list(encoded.truncated[start:end])))
            start = end

    def _encode_alone(self, request: _Request) -> None:
        try:
            request.answer(self._inner.encode_batch(request.texts, request.kind))
        except Exception as exc:  # handed to the caller
            request.answer(error=exc)


def _outcome(request: _Request) -> EncodedBatch:
    if request.error is not None:
        raise request.error
    if request.result is None:
        raise MicroBatchWorkerStopped("a shared model call ended without an answer")
    return request.result

"""Micro-batching: concurrent small encode calls are gathered for a few ms and encoded as one batch.

The technique of the infinity server. Routes are sync functions run in Starlette's thread pool,
so each caller blocks on a future while one worker thread per model collects the requests that
arrive within `wait_ms` (or until `max_batch` texts), groups them by kind, encodes each group
once and hands every caller its own rows. A model call costs much more than the per-text work
for short queries, so 32 concurrent queries encoded as one batch take far less time than 32
separate calls: throughput rises with concurrency instead of queueing.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from indexer.encoding import EncodedBatch, Encoder, Kind

logger = logging.getLogger(__name__)

# How often a waiting caller checks that the worker is still alive (it never should have died:
# this only turns an impossible hang into an error).
_LIVENESS_CHECK_S = 1.0


class MicroBatchWorkerStopped(RuntimeError):
    """The worker thread ended without answering a request (a bug, never the client's fault)."""


@dataclass(kw_only=True)
class _Request:
    texts: list[str]
    kind: Kind
    future: concurrent.futures.Future[EncodedBatch] = field(default_factory=concurrent.futures.Future)


class MicroBatcher:
    """An Encoder that gathers concurrent calls to `inner` into shared batches.

    Calls of `max_batch` texts or more go straight to `inner` (a large request is a batch
    already and must not wait); so do calls after `close()`. Errors of a shared batch are
    retried per request, so that one caller's bad input fails only that caller.
    """

    def __init__(self, inner: Encoder, *, wait_ms: float, max_batch: int) -> None:
        """Start the worker thread.

        Args:
            inner: the encoder to call (thread-safe or not: only the worker and bypassing
                large calls use it, and the encoders serialise calls with their own lock).
            wait_ms: how long the first request of a batch waits for others, in ms (> 0).
            max_batch: texts per gathered batch; calls this large bypass the queue.
        """
        if wait_ms <= 0 or max_batch < 1:
            raise ValueError("micro-batching needs wait_ms > 0 and max_batch >= 1")
        self._inner = inner
        self.name, self.dimension, self.max_length = inner.name, inner.dimension, inner.max_length
        self._wait_s = wait_ms / 1000.0
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders enqueues against close(): nothing lands after None
        self._closed = False
        self._worker = threading.Thread(target=self._run, name=f"micro-batch-{inner.name}",
                                        daemon=True)
        self._worker.start()

    def encode_batch(self, texts: Sequence[str], kind: Kind = "document") -> EncodedBatch:
        texts = list(texts)
        if not texts or len(texts) >= self._max_batch:
            return self._inner.encode_batch(texts, kind)
        request = _Request(texts=texts, kind=kind)
        with self._lock:
            closed = self._closed
            if not closed:
                self._queue.put(request)
        if closed:
            return self._inner.encode_batch(texts, kind)
        return self._wait(request)

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        return self.encode_batch(texts, kind).vectors

    def close(self, timeout: float = 30.0) -> None:
        """Answer every queued request, then stop the worker; later calls encode directly."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            logger.warning("micro-batch worker of %s still busy after %.0f s", self.name, timeout)

    def _wait(self, request: _Request) -> EncodedBatch:
        while True:
            try:
                return request.future.result(timeout=_LIVENESS_CHECK_S)
            except concurrent.futures.TimeoutError:
                if not self._worker.is_alive() and not request.future.done():
                    raise MicroBatchWorkerStopped(
                        f"the micro-batch worker of {self.name} stopped") from None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first)
            self._encode(batch)

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """`first` plus what arrives within the wait (or is already queued), up to max_batch."""
        batch, count = [first], len(first.texts)
        deadline = time.monotonic() + self._wait_s
        while count < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                # Past the deadline, still take what is already queued (it piled up while the
                # previous batch was encoding): that is where batches grow under load.
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            count += len(item.texts)
        return batch, False

    def _encode(self, batch: list[_Request]) -> None:
        try:
            for kind in ("query", "document"):
                group = [r for r in batch if r.kind == kind]
                if group:
                    self._encode_group(group, kind)
        finally:
            # Only reached unanswered on a BaseException: never leave a caller blocked.
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(MicroBatchWorkerStopped("encode interrupted"))

    def _encode_group(self, group: list[_Request], kind: Kind) -> None:
        texts = [text for request in group for text in request.texts]
        try:
            encoded = self._inner.encode_batch(texts, kind)
        except Exception as exc:  # handed to the callers, not swallowed
            if len(group) == 1:
                group[0].future.set_exception(exc)
                return
            logger.info("shared batch of %d requests failed (%s); retrying them one by one",
                        len(group), exc)
            for request in group:
                self._encode_alone(request)
            return
        start = 0
        for request in group:
            end = start + len(request.texts)
            request.future.set_result(EncodedBatch(vectors=encoded.vectors[start:end],
                                                   truncated=list(encoded.truncated[start:end])))
            start = end

    def _encode_alone(self, request: _Request) -> None:
        try:
            request.future.set_result(self._inner.encode_batch(request.texts, request.kind))
        except Exception as exc:  # handed to the caller
            request.future.set_exception(exc)

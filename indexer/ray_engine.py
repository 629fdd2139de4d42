"""Bulk encoding on Ray: Ray Data `map_batches` over an actor pool of encoders; the driver commits.

In a chunked collection the actors also split each text into passages (indexer.chunking, with
the model's own token counter, as the local engine does) and return one row per passage.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.chunking import split_passages
from indexer.encoding import Encoder
from indexer.models import IndexStats, SourceDocument
from indexer.pipeline import (
    IndexOptions,
    ProgressCallback,
    add_commit,
    batches,
    commit_checked,
    commit_due,
    set_index,
)
from indexer.ray_cluster import (
    EngineUnavailable,
    RayEngine,
    check_reachable,
    last_line,
    place_actors,
    quiet_ray,
    require_ray,
)
from storage import DocumentInput, SemsearchError, check_model
from storage.backend import CollectionHandle
from storage.records import Chunking, PassageInput, PassageSpan

logger = logging.getLogger(__name__)

_SOURCE_CHANGED = "the source file changed while it was being indexed; run the same command again"


class EncodingFailed(SemsearchError):
    """The Ray job failed; what was committed before stays, and re-running resumes."""

    code = "encoding_failed"
    status = 500


class EncodeActor:
    """One encoder per actor, loaded once; encodes a batch of {doc_id, text, crc} rows.

    With a `chunking` it returns one row per passage instead: `count` passages of the
    document, passage `index` spanning `start:end` of its text.
    """

    def __init__(self, load_encoder: Callable[..., Encoder], threads: int,
                 chunking: Chunking | None = None, load_options: dict[str, Any] | None = None) -> None:
        # Without `threads` each actor's encoder would take every core of the node for itself.
        self._encoder = load_encoder(threads=threads, **(load_options or {}))
        self._chunking = chunking

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(text) for text in batch["text"]]
        if self._chunking is None:
            encoded = self._encoder.encode_batch(texts, "document")
            return {"doc_id": batch["doc_id"], "crc": batch["crc"], "vector": encoded.vectors,
                    "truncated": np.asarray(encoded.truncated, dtype=bool)}
        spans = [split_passages(text, self._encoder.count_tokens, self._chunking) for text in texts]
        owner = np.asarray([row for row, found in enumerate(spans) for _ in found], dtype=np.int64)
        flat = [span for found in spans for span in found]
        encoded = self._encoder.encode_batch(
            [texts[row][span.start:span.end] for row, span in zip(owner, flat, strict=True)],
            "document")
        return {"doc_id": batch["doc_id"][owner], "crc": batch["crc"][owner],
                "vector": encoded.vectors, "truncated": np.asarray(encoded.truncated, dtype=bool),
                "count": np.asarray([len(spans[row]) for row in owner], dtype=np.int64),
                "index": np.asarray([span.index for span in flat], dtype=np.int64),
                "start": np.asarray([span.start for span in flat], dtype=np.int64),
                "end": np.asarray([span.end for span in flat], dtype=np.int64)}


@dataclass(frozen=True, kw_only=True)
class _Encoded:
    """One row of the actors' output: a document's vector, or one of its `count` passages'."""

    doc_id: str
    crc: int
    vector: np.ndarray
    truncated: bool
    count: int = 0
    span: PassageSpan | None = None


def index_documents_ray(
    collection: CollectionHandle,
    encoder: Encoder,
    rows: Callable[[], Iterable[SourceDocument]],
    engine: RayEngine,
    options: IndexOptions,
    on_progress: ProgressCallback | None = None,
) -> IndexStats:
    """Upsert documents by id like `pipeline.index_documents`, with the encoding done on Ray.

    Two passes over `rows()` while holding the write lock: the first sends only the new or
    changed texts to Ray's object store; the second walks the rows again, takes their vectors
    from the actors' output stream (in input order) and commits as the local engine does
    through the collection's writer, so a crash keeps what was committed and a re-run resumes.

    Args:
        collection: target collection (its model must be `encoder`).
        encoder: the collection's model, as loaded on the driver (for its name and dimension).
        rows: makes a fresh iterator over the same rows each time it is called.
        engine: where the actors run and how they load the model.
        options: batch size (rows per actor call), commit interval and growth, lock wait,
            index type (as for the local engine).
        on_progress: called with the number of rows handled after each batch.

    Returns:
        The same counts as the local engine.
    """
    ray = require_ray()
    check_model(collection.name, collection.model, encoder.name, encoder.dimension)
    stats = IndexStats()
    started = time.perf_counter()
    with collection.writer(timeout=options.lock_timeout) as writer, _RaySession(ray, engine) as session:
        if options.index_kind is not None or options.index_params:
            set_index(writer, options.index_kind, options.index_params)
        sent = bytearray()  # per row of the first read: 1 if its text went to Ray
        refs = [session.put(block)
                for block in _changed_blocks(collection, rows(), options.batch_size, sent)]
        logger.info("%d of %d documents are new or changed: encoding them on Ray", sum(sent), len(sent))
        with closing(session.encode(refs, options.batch_size, collection.chunking)) as encoded:
            pending: list[DocumentInput] = []
            try:
                for batch in batches(rows(), options.batch_size):
                    pending.extend(_with_vectors(batch, stats.read, sent, stats, encoded))
                    stats.read += len(batch)
                    if commit_due(len(pending), collection, options):
                        add_commit(stats, commit_checked(writer, collection, pending, options))
                        pending = []
                    if on_progress is not None:
                        on_progress(len(batch))
                if stats.read != len(sent) or next(encoded, None) is not None:
                    raise EncodingFailed(_SOURCE_CHANGED)
            except session.errors as exc:
                done = stats.added + stats.updated + stats.unchanged
                raise EncodingFailed(f"Ray encoding failed: {last_line(exc)}; {done} documents "
                                     "were committed, run the same command again to resume") from exc
            add_commit(stats, commit_checked(writer, collection, pending, options))
    stats.seconds = time.perf_counter() - started
    return stats


class _RaySession:
    """Joins (or starts, and later stops) Ray, and runs the map_batches job on it."""

    def __init__(self, ray: Any, engine: RayEngine) -> None:
        self._ray = ray
        self._engine = engine
        self._started = False
        self.errors: tuple[type[BaseException], ...] = (ray.exceptions.RayError,)

    def __enter__(self) -> _RaySession:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._ray.shutdown()

    def _init(self) -> None:
        """Start or join Ray on first use: a run with nothing to encode never starts it."""
        if self._ray.is_initialized():
            return
        address = self._engine.address
        if address:
            check_reachable(address)
        try:
            with quiet_ray():
                self._ray.init(address=address, num_cpus=None if address else os.cpu_count(),
                               include_dashboard=False, logging_level=logging.ERROR,
                               log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineUnavailable(f"cannot {'join Ray at ' + address if address else 'start Ray'}: "
                                    f"{last_line(exc)} (check --ray-address / SEMSEARCH_RAY_ADDRESS)"
                                    ) from exc
        self._started = True
        logger.info("Ray %s: %s CPUs", address or "local", self._ray.cluster_resources().get("CPU"))

    def put(self, block: Any) -> Any:
        self._init()
        return self._ray.put(block)

    def encode(self, refs: list[Any], batch_size: int,
               chunking: Chunking | None = None) -> Generator[_Encoded, None, None]:
        """The encoded rows of `refs` (pyarrow blocks in the object store), in input order."""
        if not refs:
            return
        ray = self._ray
        placement = place_actors(self._engine, ray.cluster_resources())
        logger.info("%d encoder actors on %s", placement.actors,
                    "GPUs" if placement.num_gpus else "CPUs")
        context = ray.data.DataContext.get_current()
        saved = (context.execution_options.preserve_order, context.enable_progress_bars)
        # Set before the dataset exists (it keeps a copy of the context). Results must come back
        # in input order: the driver zips them with its second read of the rows.
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # ours is the progress bar
        try:
            dataset = ray.data.from_arrow_refs(refs).map_batches(
                EncodeActor, batch_size=batch_size, batch_format="numpy",
                fn_constructor_kwargs={"load_encoder": self._engine.load_encoder,
                                       "threads": max(1, round(self._engine.actor_cpus)),
                                       "chunking": chunking,
                                       "load_options": placement.load_options},
                num_cpus=placement.num_cpus, num_gpus=placement.num_gpus,
                compute=ray.data.ActorPoolStrategy(size=min(placement.actors, len(refs))),
            )
            with quiet_ray():
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy",
                                                  prefetch_batches=2):
                    yield from _rows(batch)
        finally:
            context.execution_options.preserve_order, context.enable_progress_bars = saved


def _rows(batch: dict[str, np.ndarray]) -> Iterator[_Encoded]:
    for row, (doc_id, crc) in enumerate(zip(batch["doc_id"], batch["crc"], strict=True)):
        span = None if "count" not in batch else PassageSpan(
            index=int(batch["index"][row]), start=int(batch["start"][row]), end=int(batch["end"][row]))
        yield _Encoded(doc_id=str(doc_id), crc=int(crc), truncated=bool(batch["truncated"][row]),
                       vector=np.asarray(batch["vector"][row], dtype=np.float32),
                       count=int(batch["count"][row]) if span is not None else 0, span=span)


def _changed_blocks(collection: CollectionHandle, rows: Iterable[SourceDocument], batch_size: int,
                    sent: bytearray) -> Iterator[Any]:
    """Pyarrow tables of `batch_size` rows that need a vector; marks each row in `sent`."""
    import pyarrow as pa

    block: list[SourceDocument] = []
    for batch in batches(rows, batch_size):
        needs = collection.needs_vectors([(d.doc_id, d.text) for d in batch])
        sent.extend(needs)
        block.extend(d for d, need in zip(batch, needs, strict=True) if need)
        while len(block) >= batch_size:
            yield _table(pa, block[:batch_size])
            block = block[batch_size:]
    if block:
        yield _table(pa, block)


def _table(pa: Any, docs: list[SourceDocument]) -> Any:
    return pa.table({
        "doc_id": [d.doc_id for d in docs],
        "text": [d.text for d in docs],
        "crc": pa.array([_crc(d.text) for d in docs], type=pa.uint32()),
    })


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def _with_vectors(batch: list[SourceDocument], first: int, sent: bytearray, stats: IndexStats,
                  encoded: Iterator[_Encoded]) -> Iterator[DocumentInput]:
    """Rows `first`.. of the second read, each sent one with the next result (same id, text)."""
    if first + len(batch) > len(sent):
        raise EncodingFailed(_SOURCE_CHANGED)
    for position, doc in enumerate(batch, start=first):
        vector, passages = None, None
        if sent[position]:
            result = _next_of(doc, encoded)
            vector = result.vector
            stats.truncated += result.truncated
            if result.span is not None:  # the first of its passages: take the others
                results = [result, *(_next_of(doc, encoded) for _ in range(result.count - 1))]
                passages = tuple(PassageInput(span=r.span, vector=r.vector)
                                 for r in results if r.span is not None)
                vector = None
                stats.truncated += sum(r.truncated for r in results[1:])
                stats.passages += len(passages)
        yield DocumentInput(doc_id=doc.doc_id, text=doc.text, metadata=doc.metadata, vector=vector,
                            passages=passages)


def _next_of(doc: SourceDocument, encoded: Iterator[_Encoded]) -> _Encoded:
    """The next encoded row, which must be `doc`'s (same id and text)."""
    result = next(encoded, None)
    if result is None or result.doc_id != doc.doc_id or result.crc != _crc(doc.text):
        raise EncodingFailed(_SOURCE_CHANGED)
    return result

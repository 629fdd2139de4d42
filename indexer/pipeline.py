"""Bulk pipeline: source rows -> changed-only encoding -> committed generations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from indexer.chunking import ChunkRequest, check_chunking, split_passages
from indexer.encoding import Encoder, Kind
from indexer.models import IndexStats, SourceDocument
from indexer.sources import SourceError, SourceSpec, read_documents
from storage import Collection, CommitStats, DocumentInput, ModelInfo, check_model
from storage.backend import Backend, CollectionHandle, CollectionWriting
from storage.errors import InvalidChunking
from storage.limits import InputLimits, check_field_count
from storage.records import Chunking, PassageInput

ProgressCallback = Callable[[int], None]
C = TypeVar("C", bound=CollectionHandle)


@dataclass(frozen=True, kw_only=True)
class IndexOptions:
    """How a bulk job writes.

    Attributes:
        commit_growth: a commit also waits until it holds this fraction of the collection's
            size. Each commit rewrites the whole index file, so commits of a fixed size make a
            bulk job O(N^2) in bytes written; growing them geometrically keeps it O(N).
        index_kind, index_params: change the collection's index type / parameters (one
            commit, before the documents; a structural change rebuilds from SQLite).
        limits: per-document and per-collection bounds; commits check the field count.
    """

    batch_size: int = 64
    commit_every: int = 2048
    lock_timeout: float = 0.0
    commit_growth: float = 0.0
    index_kind: str | None = None
    index_params: dict[str, str] = field(default_factory=dict)
    limits: InputLimits = field(default_factory=InputLimits)


@dataclass(frozen=True, kw_only=True)
class SourceScan:
    """The pre-check of a file: every row valid, and where each id's last row is."""

    rows: int
    last_line: dict[str, int]

    @property
    def documents(self) -> int:
        return len(self.last_line)


def scan_source(spec: SourceSpec) -> SourceScan:
    """Read the whole file once, raising SourceError at the first bad row; nothing is written."""
    last_line: dict[str, int] = {}
    fields: set[str] = set()
    rows = 0
    for doc in read_documents(spec):
        last_line[doc.doc_id] = doc.line
        rows += 1
        fields.update(doc.metadata)
        if len(fields) > spec.limits.max_fields:  # the commit checks it with the stored fields
            raise SourceError(f"{spec.path} line {doc.line}: the file has more than "
                              f"{spec.limits.max_fields} distinct metadata fields; the limit is "
                              f"{spec.limits.max_fields} (SEMSEARCH_MAX_FIELDS)")
    return SourceScan(rows=rows, last_line=last_line)


def latest_rows(spec: SourceSpec, scan: SourceScan) -> Iterator[SourceDocument]:
    """The file's rows, keeping only the last row of an id that appears more than once.

    Dropping the earlier rows up front keeps re-indexing a no-op: otherwise two rows of one
    id on both sides of a commit boundary would each win once per run.
    """
    return (doc for doc in read_documents(spec) if scan.last_line.get(doc.doc_id) == doc.line)


def open_collection(data_dir: Path, name: str, encoder: Encoder,
                    chunking: ChunkRequest | None = None) -> Collection:
    """Open (or create) a collection for `encoder`; a different model is a ManifestMismatch.

    `chunking` (None: no passages) applies to a new collection; given explicitly to an
    existing one, it must be what that collection was made with (InvalidChunking).
    """
    wanted = chunking.resolve(encoder.max_length) if chunking is not None else None
    collection = Collection.open_or_create(data_dir, name, encoder_model_info(encoder),
                                           chunking=wanted)
    return _checked_chunking(collection, chunking, encoder)


def open_collection_in(backend: Backend, name: str, encoder: Encoder,
                       chunking: ChunkRequest | None = None) -> CollectionHandle:
    """Open (or create) a collection for `encoder` in any storage backend (faiss or milvus).

    A default ChunkRequest makes passages where the backend stores them (both backends do),
    and one vector per document elsewhere; explicit options it cannot keep are an error.
    """
    wanted = None
    if chunking is not None and (chunking.explicit or backend.stores_passages):
        wanted = chunking.resolve(encoder.max_length)
    return _checked_chunking(backend.open_or_create(name, encoder_model_info(encoder), wanted),
                             chunking, encoder)


def _checked_chunking(collection: C, chunking: ChunkRequest | None, encoder: Encoder) -> C:
    if chunking is not None:
        try:
            check_chunking(collection.name, collection.chunking, chunking, encoder.max_length)
        except InvalidChunking:
            collection.close()
            raise
    return collection


def encoder_model_info(encoder: Encoder) -> ModelInfo:
    return ModelInfo(name=encoder.name, dimension=encoder.dimension, max_length=encoder.max_length,
                     backend=str(getattr(encoder, "backend", "")))


def index_documents(
    collection: CollectionHandle,
    encoder: Encoder,
    docs: Iterable[SourceDocument],
    options: IndexOptions = IndexOptions(),
    on_progress: ProgressCallback | None = None,
) -> IndexStats:
    """Upsert documents by id: encode only new or changed texts, commit every N documents.

    Args:
        collection: target collection (its model must be `encoder`).
        encoder: the model that built the collection.
        docs: rows to upsert; an id seen twice keeps its last row.
        options: batch size, commit interval, how long to wait for the write lock.
        on_progress: called with the number of rows handled after each batch.

    Returns:
        Counts of added / updated / unchanged / truncated documents and the time taken.
    """
    check_model(collection.name, collection.model, encoder.name, encoder.dimension)
    stats = IndexStats()
    started = time.perf_counter()
    with collection.writer(timeout=options.lock_timeout) as writer:
        if options.index_kind is not None or options.index_params:
            set_index(writer, options.index_kind, options.index_params)
        pending: list[DocumentInput] = []
        for batch in batches(docs, options.batch_size):
            pending.extend(_prepare(collection, encoder, batch, stats))
            if commit_due(len(pending), collection, options):
                add_commit(stats, commit_checked(writer, collection, pending, options))
                pending = []
            if on_progress is not None:
                on_progress(len(batch))
        add_commit(stats, commit_checked(writer, collection, pending, options))
    stats.seconds = time.perf_counter() - started
    return stats


def commit_due(pending: int, collection: CollectionHandle, options: IndexOptions) -> bool:
    """Whether `pending` documents make a commit now (shared by the local and ray engines)."""
    return pending >= max(options.commit_every, options.commit_growth * collection.count)


def commit_checked(writer: CollectionWriting, collection: CollectionHandle,
                   pending: Sequence[DocumentInput], options: IndexOptions) -> CommitStats:
    """Commit `pending` unless it would take the collection past its distinct-field limit.

    Checked here, by the lock holder, because the limit depends on what is already stored
    (shared by the local and ray engines, for files and HTTP upserts alike).
    """
    if pending:
        check_field_count(collection.fields(), {key for doc in pending for key in doc.metadata},
                          options.limits)
    return writer.commit(pending)


def set_index(writer: CollectionWriting, kind: str | None, params: dict[str, str]) -> None:
    """Commit a new index type / parameters for the collection.

    Raises:
        InvalidIndexSpec: an unknown type or parameter, or a storage without index types.
    """
    writer.set_index(kind, params)


def delete_documents(collection: CollectionHandle, doc_ids: Sequence[str],
                     lock_timeout: float = 0.0) -> CommitStats:
    """Delete by id in one commit; ids that do not exist are listed in `missing`."""
    with collection.writer(timeout=lock_timeout) as writer:
        return writer.commit(deletes=list(doc_ids))


def attach_vectors(collection: CollectionHandle, encoder: Encoder, docs: Sequence[DocumentInput],
                   kind: Kind = "document", batch_size: int = 64
                   ) -> tuple[list[DocumentInput], int]:
    """Encode only the documents whose text is new or changed in `collection`.

    Args:
        collection: where the documents will be committed (its stored hashes decide).
        encoder: the collection's model.
        docs: documents without vectors.
        kind: how to encode them ("document", or "query" for FAQ questions).
        batch_size: texts per encode call.

    Returns:
        The documents, those needing one now with a vector; and how many were truncated.
    """
    needs = collection.needs_vectors([(d.doc_id, d.text) for d in docs])
    changed = [d for d, need in zip(docs, needs, strict=True) if need]
    if collection.chunking is not None:
        return attach_passages(encoder, docs, changed, collection.chunking, batch_size)
    vectors: dict[int, np.ndarray] = {}  # by object: one request may repeat an id
    truncated = 0
    for start in range(0, len(changed), max(1, batch_size)):
        batch = changed[start:start + max(1, batch_size)]
        encoded = encoder.encode_batch([d.text for d in batch], kind)
        truncated += sum(encoded.truncated)
        vectors.update(zip((id(d) for d in batch), encoded.vectors, strict=True))
    return [replace(d, vector=vectors.get(id(d))) for d in docs], truncated


def attach_passages(encoder: Encoder, docs: Sequence[DocumentInput],
                    changed: Sequence[DocumentInput], chunking: Chunking,
                    batch_size: int = 64) -> tuple[list[DocumentInput], int]:
    """Split the changed documents into passages and encode every passage.

    Args:
        encoder: the collection's model.
        docs: all the documents of the commit, in order.
        changed: those among `docs` whose text is new or changed.
        chunking: the collection's window and overlap.
        batch_size: passages per encode call.

    Returns:
        The documents, the changed ones with their passages; and how many passages were cut
        (none, unless the tokenizer disagrees with its own counts).
    """
    spans = {id(d): split_passages(d.text, encoder.count_tokens, chunking) for d in changed}
    pieces = [(id(d), span) for d in changed for span in spans[id(d)]]
    texts = [d.text for d in changed for _ in spans[id(d)]]
    found: dict[int, list[PassageInput]] = {id(d): [] for d in changed}
    truncated = 0
    step = max(1, batch_size)
    for start in range(0, len(pieces), step):
        batch = pieces[start:start + step]
        encoded = encoder.encode_batch([texts[start + i][s.start:s.end]
                                        for i, (_, s) in enumerate(batch)], "document")
        truncated += sum(encoded.truncated)
        for (key, span), vector in zip(batch, encoded.vectors, strict=True):
            found[key].append(PassageInput(span=span, vector=vector))
    return [replace(d, passages=tuple(found[id(d)])) if id(d) in found else d
            for d in docs], truncated


def _prepare(collection: CollectionHandle, encoder: Encoder, batch: list[SourceDocument],
             stats: IndexStats) -> list[DocumentInput]:
    stats.read += len(batch)
    docs = [DocumentInput(doc_id=d.doc_id, text=d.text, metadata=d.metadata) for d in batch]
    prepared, truncated = attach_vectors(collection, encoder, docs, "document", len(docs))
    stats.truncated += truncated
    stats.passages += sum(len(d.passages or ()) for d in prepared)
    return prepared


def add_commit(stats: IndexStats, commit: CommitStats) -> None:
    stats.added += commit.added
    stats.updated += commit.updated
    stats.unchanged += commit.unchanged


def batches(docs: Iterable[SourceDocument], size: int) -> Iterator[list[SourceDocument]]:
    iterator = iter(docs)
    while batch := list(islice(iterator, size)):
        yield batch

"""Milvus storage backend: semsearch collections kept in Milvus through pymilvus MilvusClient.

Same interface as storage.faiss.collection.Collection (see storage.backend.CollectionHandle):
upsert by id, delete, search by inner product of L2-normalised vectors (= cosine), typed
metadata filters, counts, get by id, the model check. The URI is a milvus-lite `.db` path
(in-process) or a server such as http://host:19530.

Each semsearch collection is one Milvus collection (`semsearch_<name>`, documents keyed by
`doc_id`), plus a passages collection when it splits documents into passages (see
storage.milvus.passages); the `semsearch_catalog` collection keeps one row per collection: its
model, generation, document count and metadata fields. What differs from FAISS + SQLite:
- a commit is several Milvus requests, not one transaction: a crash mid-commit can leave
  part of it applied (re-running the same job completes it: upserts are idempotent);
- one writer per collection is enforced inside a process only, not across processes;
- texts are limited to 65,535 bytes and ids to 2,048 bytes (Milvus VARCHAR limits).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from pymilvus import MilvusClient

from storage.commit_plan import CommitPlan, ids_to_look_up, plan_commit
from storage.errors import (
    DocumentNotFound,
    StorageError,
    UnknownFilterField,
)
from storage.faq_store import FaqConfig
from storage.filters import Filter
from storage.index_types import InvalidIndexSpec, SearchParams
from storage.info import StoredDocument
from storage.locks import in_process_writer
from storage.manifest import Manifest
from storage.milvus import faq, lexical, passages, schema
from storage.milvus.client import call, queries_per_request
from storage.records import (
    Chunking,
    CommitStats,
    DocumentInput,
    Hit,
    chunks,
    content_hash,
    metadata_json,
    utc_now,
)

logger = logging.getLogger(__name__)


class Catalog(Protocol):
    """What a collection handle needs of its backend: the client and the catalog rows."""

    client: MilvusClient
    def row(self, name: str) -> schema.CatalogRow | None: ...
    def write_row(self, row: schema.CatalogRow) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Stored:
    """A stored document's state, as commit planning reads it."""

    content_hash: str
    metadata_json: str


POLL_SECONDS = 1.0  # how stale a handle's view of the catalog (count, generation, fields) may be
ROWS_PER_REQUEST = 256  # keeps each upsert far below Milvus's 64 MB request limit
IDS_PER_QUERY = 500
MAX_CACHED_TERMS = 100_000  # term presence remembered per handle (cleared on a new generation)


class MilvusCollection:
    """Handle on one collection in Milvus; thread-safe, one writer at a time per handle."""

    def __init__(self, backend: Catalog, row: schema.CatalogRow) -> None:
        self._backend = backend
        self._client = backend.client
        self._row = row
        self.name, self.model, self.created_at = row.name, row.model, row.created_at
        self._replaced = False
        self.unavailable: str | None = None  # Milvus reports its own faults as errors per call
        self.rebuilds = 0  # no local index files to rebuild
        self._polled = time.monotonic()
        self._poll_lock = threading.Lock()
        self._write_mutex = threading.Lock()
        call("load_collection", self._client.load_collection, row.collection)
        described = call("describe", self._client.describe_collection, row.collection)
        self.chunking: Chunking | None = passages.chunking_of(described)
        self._passages: passages.MilvusPassages | None = None
        self._passage_total = (-1, 0)  # (generation, passages) cached for `passage_count`
        if self.chunking is not None:
            stored = passages.passages_of(described) or passages.passages_name(row.collection)
            call("load_collection", self._client.load_collection, stored)
            self._passages = passages.MilvusPassages(
                self._client, stored, row.index_type, self._rows,
                row.collection if lexical.has_lexical(described) else None)
        self.has_lexical = self._passages is not None or lexical.has_lexical(described)
        self._terms: dict[str, bool] = {}  # term -> occurs in the collection, in generation:
        self._terms_generation = row.generation

    # -- state ---------------------------------------------------------------
    @property
    def count(self) -> int:
        return self._row.count

    @property
    def generation(self) -> int:
        return self._row.generation

    @property
    def passage_count(self) -> int | None:
        """Passages in the generation served; None when each document is one vector."""
        if self._passages is None:
            return None
        generation = self._row.generation
        if self._passage_total[0] != generation:
            self._passage_total = (generation, self._passages.count())
        return self._passage_total[1]

    def _poll(self, force: bool = False) -> bool:
        """Re-read the catalog row (at most once per POLL_SECONDS unless forced)."""
        with self._poll_lock:
            if not force and time.monotonic() - self._polled < POLL_SECONDS:
                return False
            row = self._backend.row(self.name)
            self._polled = time.monotonic()
            if row is None or row.uid != self._row.uid:
                self._replaced = True
                return False
            if row.generation <= self._row.generation:
                return False
            self._row = row
            return True

    def refresh(self) -> bool:
        """Take in a newer generation committed by another process (its count and fields)."""
        return self._poll(force=True)

    def replaced_on_disk(self) -> bool:
        """True if the collection was deleted or recreated since this handle opened it."""
        self._poll()
        return self._replaced

    def fields(self) -> list[str]:
        self._poll()
        return list(self._row.fields)

    def manifest(self) -> Manifest:
        row = self._row
        return Manifest(name=self.name, model=self.model, count=row.count, generation=row.generation,
                        created_at=row.created_at, updated_at=row.updated_at,
                        index_file="", index=self.index_info(),
                        chunking=None if self.chunking is None else
                        {"tokens": self.chunking.tokens, "overlap": self.chunking.overlap},
                        passages=self.passage_count)

    def index_info(self) -> dict[str, Any]:
        """The Milvus index in use (SEMSEARCH_MILVUS_INDEX when the collection was made)."""
        return {"backend": "milvus", "collection": self._row.collection,
                "type": self._row.index_type, "lexical": "bm25" if self.has_lexical else None}

    def close(self) -> None:
        """Nothing to release: the backend owns the connection."""

    # -- reading -------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, filter_: Filter | None = None,
               params: SearchParams | None = None) -> list[list[Hit]]:
        """Top-k documents per query vector by inner product (cosine for L2-normalised vectors).

        `params` (FAISS efSearch / nprobe) does not apply: Milvus uses SEMSEARCH_MILVUS_INDEX's.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.model.dimension:
            raise ValueError(f"query vectors have shape {vectors.shape}; collection '{self.name}' "
                             f"expects (n, {self.model.dimension})")
        if len(vectors) == 0:
            return []
        self._poll()  # keeps count and generation (for /metrics) close to what is stored
        expression = self._expression(filter_) if filter_ else ""
        if self._passages is not None:
            return self._passages.dense(vectors, k, expression)
        limit = min(k, schema.MAX_TOP_K)
        found: list[Any] = []
        for start in range(0, len(vectors), queries_per_request(limit)):
            found.extend(call("search", self._client.search, self._row.collection,
                              data=vectors[start:start + queries_per_request(limit)].tolist(),
                              limit=limit, filter=expression, anns_field="vector",
                              output_fields=["text", "metadata"],
                              search_params=schema.search_params(self._row.index_type, k)))
        return [[self._hit(hit) for hit in hits] for hits in found]

    @staticmethod
    def _hit(hit: Any) -> Hit:
        entity, score = hit["entity"], float(hit["distance"])
        return Hit(doc_id=str(hit["doc_id"]), score=score, text=entity["text"],
                   metadata=dict(entity["metadata"] or {}), dense_score=score)

    def _expression(self, filter_: Filter) -> str:
        try:
            return schema.filter_expression(filter_, set(self._row.fields))
        except UnknownFilterField:  # maybe another process added the field a moment ago
            self._poll(force=True)
            return schema.filter_expression(filter_, set(self._row.fields))

    def lexical_search(self, texts: Sequence[str], k: int,
                       filter_: Filter | None = None) -> list[list[Hit]]:
        """Top-k documents per query text by Milvus's BM25 (`score` = BM25)."""
        if not self.has_lexical:
            raise lexical.missing(self.name)
        self._poll()
        expression = self._expression(filter_) if filter_ else ""
        if self._passages is not None:
            return self._passages.lexical(texts, k, expression)
        found = lexical.search(self._client, self._row.collection, texts,
                               min(k, schema.MAX_TOP_K), expression)
        return [[Hit(doc_id=hit["doc_id"], score=hit["score"], text=hit["text"],
                     metadata=dict(hit["metadata"] or {}), lexical_score=hit["score"])
                 for hit in hits] for hits in found]

    def lexical_coverage(self, texts: Sequence[str]) -> list[float]:
        """Per query text, the share of its terms that occur in this collection."""
        if not self.has_lexical:
            raise lexical.missing(self.name)
        self._poll()
        # A local reference: another thread may start a new cache meanwhile, never empty ours.
        cache = self._terms
        if self._terms_generation != self._row.generation or len(cache) > MAX_CACHED_TERMS:
            cache = self._terms = {}  # a commit (here or elsewhere) may have added or removed terms
            self._terms_generation = self._row.generation
        per_text = [lexical.query_terms(text) for text in texts]
        unseen = list(dict.fromkeys(t for terms in per_text for t in terms if t not in cache))
        searched = self._row.collection
        if self._passages is not None and self._passages.documents_lexical is None:
            searched = self._passages.collection
        cache.update(zip(unseen, lexical.terms_present(self._client, searched, unseen), strict=True))
        return [sum(cache[t] for t in terms) / len(terms) if terms else 0.0 for terms in per_text]

    def doc_ids(self) -> set[str]:
        """Every document id (for small collections such as an FAQ's)."""
        ids: set[str] = set()
        iterator = call("query iterator", self._client.query_iterator, self._row.collection,
                        batch_size=IDS_PER_QUERY, filter="", output_fields=["doc_id"])
        try:
            while batch := call("query iterator", iterator.next):
                ids.update(str(row["doc_id"]) for row in batch)
        finally:
            iterator.close()
        return ids

    # -- FAQ settings (storage.milvus.faq) ---------------------------------------
    def faq_config(self) -> FaqConfig | None:
        """The FAQ settings, or None if it is not an FAQ."""
        return faq.read_config(self._client, self.name, self._row.uid)

    def set_faq_config(self, config: FaqConfig) -> None:
        """Store the FAQ settings (a row of `semsearch_faq`; the documents are untouched)."""
        faq.write_config(self._client, self.name, self._row.uid, config)

    def get(self, doc_id: str) -> StoredDocument:
        rows = self._rows([doc_id], ["text", "metadata"])
        if doc_id not in rows:
            raise DocumentNotFound(f"document '{doc_id}' not found in collection '{self.name}'")
        row = rows[doc_id]
        # Milvus has no row ids: -1 says so (the FAISS backend's rowid is its FAISS id).
        return StoredDocument(rowid=-1, doc_id=doc_id, text=row["text"],
                              metadata=dict(row["metadata"] or {}))

    def needs_vectors(self, docs: Sequence[tuple[str, str]]) -> list[bool]:
        """For (doc_id, text) pairs: True where the stored text differs or the id is new."""
        existing = self._rows([doc_id for doc_id, _ in docs], ["content_hash"])
        return [doc_id not in existing or existing[doc_id]["content_hash"] != content_hash(text)
                for doc_id, text in docs]

    def _rows(self, doc_ids: Sequence[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(dict.fromkeys(doc_ids)), IDS_PER_QUERY):
            for row in call("query", self._client.query, self._row.collection,
                             filter=schema.id_list(list(chunk)), output_fields=["doc_id", *fields]):
                found[row["doc_id"]] = row
        return found

    def _count(self) -> int:
        rows = call("count", self._client.query, self._row.collection, filter="",
                     output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    # -- writing -------------------------------------------------------------
    @contextmanager
    def writer(self, timeout: float = 0.0) -> Iterator[MilvusWriter]:
        """Hold this handle's write lock (in-process only: Milvus has no cross-process lock).

        Args:
            timeout: seconds to wait for another writer; 0 fails at once.
        """
        with in_process_writer(self._write_mutex, self.name, timeout):
            self._poll(force=True)
            if self._replaced:
                raise StorageError(f"collection '{self.name}' was deleted or recreated; reopen it")
            yield MilvusWriter(self)

    def _commit(self, upserts: Sequence[DocumentInput], deletes: Sequence[str]) -> CommitStats:
        ids = ids_to_look_up(upserts, deletes)
        found = self._rows(ids, ["content_hash", "metadata"])
        existing = {doc_id: Stored(content_hash=row["content_hash"],
                                   metadata_json=metadata_json(dict(row["metadata"] or {})))
                    for doc_id, row in found.items()}
        plan = plan_commit(upserts, deletes, existing, dimension=self.model.dimension,
                           name=self.name, check_document=schema.check_document,
                           generation=self._row.generation, chunked=self._passages is not None)
        if self._passages is not None:
            return self._commit_passages(self._passages, plan, ids, existing)
        stats, gone = plan.stats, plan.deletes
        if not stats.changed and not self._interrupted():
            return stats
        rows, keep_vector = [], []
        for item in plan.upserts:
            row = schema.document_row(item.doc, item.digest)
            if item.vector is None:
                keep_vector.append(row)
            else:
                rows.append({**row, "vector": item.vector.tolist()})
        if keep_vector:  # Milvus upserts whole rows: a metadata-only change keeps its vector
            vectors = self._rows([row["doc_id"] for row in keep_vector], ["vector"])
            rows.extend({**row, "vector": vectors[row["doc_id"]]["vector"]} for row in keep_vector)
        self._write_documents(rows, gone)
        return self._new_generation(plan)

    def _commit_passages(self, stored: passages.MilvusPassages, plan: CommitPlan, ids: list[str],
                         existing: dict[str, Stored]) -> CommitStats:
        """Passages first, then documents, then the sweep (storage.milvus.passages says why)."""
        # Deleted and unknown ids keep no passages (a crash may have left some).
        current: dict[str, str | None] = {doc_id: None for doc_id in ids}
        current.update({doc_id: old.content_hash for doc_id, old in existing.items()})
        current.update({doc_id: None for doc_id in plan.deletes})
        current.update({item.doc.doc_id: item.digest for item in plan.upserts})
        if plan.stats.changed:
            stored.write(plan.upserts)
            searchable = stored.documents_lexical is not None
            self._write_documents([passages.document_row(item, searchable) for item in plan.upserts],
                                  plan.deletes)
        # Also ids planned unchanged: a crash may have left passages of their previous text.
        swept = stored.sweep(current)
        if not plan.stats.changed and not swept and not self._interrupted():
            return plan.stats
        return self._new_generation(plan)

    def _interrupted(self) -> bool:
        """Whether Milvus holds another count than the catalog row: a commit cut short before
        its row was written (this one, re-run, records it)."""
        return self._count() != self._row.count

    def _write_documents(self, rows: list[dict[str, Any]], gone: Sequence[str]) -> None:
        for chunk in chunks(rows, ROWS_PER_REQUEST):
            call("upsert", self._client.upsert, self._row.collection, list(chunk))
        for id_chunk in chunks(gone, IDS_PER_QUERY):
            call("delete", self._client.delete, self._row.collection,
                  filter=schema.id_list(list(id_chunk)))

    def _new_generation(self, plan: CommitPlan) -> CommitStats:
        """Record the commit in the catalog row (the generation readers see)."""
        self._row = replace(self._row, generation=self._row.generation + 1, count=self._count(),
                            fields=tuple(sorted(set(self._row.fields) | plan.fields)), updated_at=utc_now())
        self._backend.write_row(self._row)
        plan.stats.generation = self._row.generation
        return plan.stats


class MilvusWriter:
    """What a holder of the write lock may do: commit upserts and deletes."""

    def __init__(self, collection: MilvusCollection) -> None:
        self._collection = collection

    @property
    def collection(self) -> MilvusCollection:
        return self._collection

    def commit(self, upserts: Sequence[DocumentInput] = (), deletes: Sequence[str] = ()
               ) -> CommitStats:
        """Apply upserts and deletes as one new generation (or nothing, if nothing changed)."""
        return self._collection._commit(upserts, deletes)

    def set_index(self, kind: str | None, params: dict[str, str]) -> CommitStats:
        """Refused: a Milvus collection keeps the index it was made with."""
        raise InvalidIndexSpec("--index applies to the faiss storage; Milvus collections use "
                               "SEMSEARCH_MILVUS_INDEX when they are created")

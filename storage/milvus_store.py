"""Milvus storage backend: semsearch collections kept in Milvus through pymilvus MilvusClient.

Same interface as storage.collection.Collection (see storage.backend.CollectionHandle):
upsert by id, delete, search by inner product of L2-normalised vectors (= cosine), typed
metadata filters, counts, get by id, the model check. The URI is a milvus-lite `.db` path
(in-process) or a server such as http://host:19530.

Each semsearch collection is one Milvus collection (`semsearch_<name>`, documents keyed by
`doc_id`); the `semsearch_catalog` collection keeps one row per collection: its model,
generation, document count and metadata fields. What differs from FAISS + SQLite:
- a commit is several Milvus requests, not one transaction: a crash mid-commit can leave
  part of it applied (re-running the same job completes it: upserts are idempotent);
- one writer per collection is enforced inside a process only, not across processes;
- texts are limited to 65,535 bytes and ids to 2,048 bytes (Milvus VARCHAR limits).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pymilvus import MilvusClient, MilvusException

from storage import milvus_schema as schema
from storage.collection import CollectionInfo
from storage.errors import (
    DocumentNotFound,
    IndexNotFound,
    StorageError,
    UnknownFilterField,
)
from storage.index_types import SearchParams
from storage.locks import in_process_writer
from storage.manifest import Manifest, ModelInfo, check_model
from storage.metadata import Filter, StoredDocument
from storage.milvus_check import check_milvus_collection
from storage.passages import WithoutPassages, refuse_chunking
from storage.records import (
    Chunking,
    CommitStats,
    DocumentInput,
    Hit,
    chunks,
    content_hash,
    metadata_json,
    utc_now,
    validate_name,
)

if TYPE_CHECKING:
    from storage.check import CheckReport

logger = logging.getLogger(__name__)

T = TypeVar("T")
POLL_SECONDS = 1.0  # how stale a handle's view of the catalog (count, generation, fields) may be
ROWS_PER_REQUEST = 256  # keeps each upsert far below Milvus's 64 MB request limit
IDS_PER_QUERY = 500
MAX_COLLECTIONS = 16_384
CATALOG_FIELDS = ["name", "uid", "collection", "model", "index_type", "created_at", "updated_at",
                  "generation", "doc_count", "fields"]


def _call(what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one Milvus request; a Milvus failure becomes a StorageError saying what failed."""
    try:
        return func(*args, **kwargs)
    except MilvusException as exc:
        raise StorageError(f"milvus {what} failed: {exc.message}") from exc


class MilvusBackend(WithoutPassages):
    """Collections in one Milvus database (a milvus-lite `.db` path or a server URI)."""

    kind: Literal["milvus"] = "milvus"

    def __init__(self, uri: str, *, data_dir: Path, token: str | None = None,
                 index: str = "flat") -> None:
        if index not in schema.INDEX_TYPES:
            raise StorageError(f"unknown milvus index '{index}': use one of "
                               f"{', '.join(schema.INDEX_TYPES)}")
        self.uri, self.data_dir, self.index = uri, Path(data_dir), index
        if "://" not in uri:  # a milvus-lite database folder, created on first use
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = MilvusClient(uri=uri, token=token or "")
        except MilvusException as exc:
            raise StorageError(f"cannot connect to {self.describe()}: {exc.message}") from exc
        self._ensure_catalog()

    def _ensure_catalog(self) -> None:
        if not _call("has_collection", self.client.has_collection, schema.CATALOG):
            try:
                self._create_collection(schema.CATALOG, schema.catalog_schema(),
                                        schema.catalog_index(self.client))
            except MilvusException as exc:  # another process may have created it meanwhile
                if not _call("has_collection", self.client.has_collection, schema.CATALOG):
                    raise StorageError(f"cannot create the milvus catalog: {exc.message}") from exc
        # Loaded state does not outlive a Milvus restart (milvus-lite restarts with every
        # process that opens a .db), and a query on a released collection fails.
        _call("load catalog", self.client.load_collection, schema.CATALOG)

    def _create_collection(self, name: str, fields: Any, index: Any) -> None:
        """Create, index and load a collection (raises MilvusException)."""
        self.client.create_collection(name, schema=fields, consistency_level="Strong")
        # sync=False: pymilvus would otherwise poll the index state with a fixed 0.5 s sleep;
        # an empty collection has nothing to build, and Milvus searches unindexed data exactly.
        self.client.create_index(name, index, sync=False)
        self.client.load_collection(name)

    def describe(self) -> str:
        """Where the collections are, for messages (credentials in the URI left out)."""
        return f"milvus at {self.uri.rsplit('@', 1)[-1] if '://' in self.uri else self.uri}"

    def row(self, name: str) -> schema.CatalogRow | None:
        rows = _call("catalog query", self.client.query, schema.CATALOG,
                     filter=f"name == {schema.quote(name)}", output_fields=CATALOG_FIELDS)
        return schema.CatalogRow.from_row(rows[0]) if rows else None

    def write_row(self, row: schema.CatalogRow) -> None:
        _call("catalog upsert", self.client.upsert, schema.CATALOG, [row.to_row()])

    def names(self) -> list[str]:
        rows = _call("catalog query", self.client.query, schema.CATALOG, filter='name != ""',
                     output_fields=["name"], limit=MAX_COLLECTIONS)
        return sorted(str(row["name"]) for row in rows)

    def info(self, name: str) -> CollectionInfo:
        row = self._existing_row(name)
        return CollectionInfo(name=row.name, model=row.model, created_at=row.created_at,
                              count=row.count, generation=row.generation)

    def open(self, name: str) -> MilvusCollection:
        return MilvusCollection(self, self._existing_row(name))

    def check(self, name: str) -> CheckReport:
        """Verify a collection against its catalog row (see storage.milvus_check)."""
        return check_milvus_collection(self.client, self.row, validate_name(name), self.describe())

    def open_or_create(self, name: str, model: ModelInfo,
                       chunking: Chunking | None = None) -> MilvusCollection:
        """Open `name`, creating it for `model` if missing; a different model is ManifestMismatch."""
        refuse_chunking(chunking)
        row = self.row(validate_name(name)) or self._create(name, model)
        check_model(name, row.model, model.name, model.dimension)
        return MilvusCollection(self, row)

    def _existing_row(self, name: str) -> schema.CatalogRow:
        row = self.row(validate_name(name))
        if row is None:
            raise IndexNotFound(f"collection '{name}' does not exist in {self.describe()}")
        return row

    def _create(self, name: str, model: ModelInfo) -> schema.CatalogRow:
        """Create the documents collection, then its catalog row (the row makes it visible)."""
        target = schema.milvus_name(name)
        if _call("has_collection", self.client.has_collection, target):
            # Left by a create that crashed before its catalog row: reuse it if it fits.
            described = _call("describe", self.client.describe_collection, target)
            dims = [f.get("params", {}).get("dim") for f in described["fields"] if f["name"] == "vector"]
            if dims != [model.dimension]:
                _call("drop_collection", self.client.drop_collection, target)
        if not _call("has_collection", self.client.has_collection, target):
            _call("create_collection", self._create_collection, target,
                  schema.data_schema(model.dimension), schema.data_index(self.client, self.index))
        created = utc_now()
        row = schema.CatalogRow(name=name, uid=uuid.uuid4().hex, collection=target, model=model,
                         index_type=self.index, created_at=created, updated_at=created,
                         generation=0, count=0, fields=())
        raced = self.row(name)  # another process finished creating it meanwhile: use theirs
        if raced is not None:
            return raced
        self.write_row(row)
        logger.info("created milvus collection %s for %s (%s)", target, name, self.index)
        return row

    def close(self) -> None:
        self.client.close()


class MilvusCollection(WithoutPassages):
    """Handle on one collection in Milvus; thread-safe, one writer at a time per handle."""

    def __init__(self, backend: MilvusBackend, row: schema.CatalogRow) -> None:
        self._backend = backend
        self._client = backend.client
        self._row = row
        self.name, self.model, self.created_at = row.name, row.model, row.created_at
        # No files live here; FAQ lookups (faq.json) find none, so a Milvus collection is not an FAQ.
        self.folder = backend.data_dir / row.name
        self._replaced = False
        self.unavailable: str | None = None  # Milvus reports its own faults as errors per call
        self.rebuilds = 0  # no local index files to rebuild
        self._polled = time.monotonic()
        self._poll_lock = threading.Lock()
        self._write_mutex = threading.Lock()
        _call("load_collection", self._client.load_collection, row.collection)

    # -- state ---------------------------------------------------------------
    @property
    def count(self) -> int:
        return self._row.count

    @property
    def generation(self) -> int:
        return self._row.generation

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
                        index_file="", index={"backend": "milvus", "collection": row.collection,
                                              "type": row.index_type})

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
        found = _call("search", self._client.search, self._row.collection, data=vectors.tolist(),
                      limit=min(k, schema.MAX_TOP_K), filter=expression, anns_field="vector",
                      output_fields=["text", "metadata"],
                      search_params=schema.search_params(self._row.index_type, k))
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
        raise schema.UnsupportedOnBackend(
            f"collection '{self.name}' is stored in Milvus, which has dense search only: use "
            "mode 'dense' (SEMSEARCH_SEARCH_MODE=dense); lexical and hybrid search need "
            "SEMSEARCH_STORAGE=faiss")

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
            for row in _call("query", self._client.query, self._row.collection,
                             filter=schema.id_list(list(chunk)), output_fields=["doc_id", *fields]):
                found[row["doc_id"]] = row
        return found

    def _count(self) -> int:
        rows = _call("count", self._client.query, self._row.collection, filter="",
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
        stats = CommitStats(generation=self._row.generation)
        # A repeated id: the last upsert wins; an id also deleted in this commit: the delete wins.
        doomed = set(deletes)
        upserted = {doc.doc_id for doc in upserts}
        latest = {doc.doc_id: doc for doc in upserts if doc.doc_id not in doomed}
        existing = self._rows([*latest, *doomed], ["content_hash", "metadata"])
        rows: list[dict[str, Any]] = []
        keep_vector: list[dict[str, Any]] = []
        fields: set[str] = set()
        for doc in latest.values():  # every check runs before anything is written
            digest, meta_json = content_hash(doc.text), metadata_json(doc.metadata)
            schema.check_sizes(doc.doc_id, doc.text)
            fields.update(doc.metadata)
            row = {"doc_id": doc.doc_id, "text": doc.text, "content_hash": digest,
                   "metadata": doc.metadata, "filter_tags": schema.filter_tags(doc.doc_id, doc.metadata)}
            old = existing.get(doc.doc_id)
            if old is not None and old["content_hash"] == digest:
                if metadata_json(dict(old["metadata"] or {})) == meta_json:
                    stats.unchanged += 1
                else:
                    keep_vector.append(row)
                    stats.updated += 1
                continue
            row["vector"] = schema.checked_vector(doc, self.model.dimension, self.name).tolist()
            rows.append(row)
            stats.added += old is None
            stats.updated += old is not None
        gone = [doc_id for doc_id in dict.fromkeys(deletes) if doc_id in existing]
        stats.deleted = len(gone)
        stats.missing = [d for d in dict.fromkeys(deletes) if d not in existing and d not in upserted]
        if not stats.changed:
            return stats
        if keep_vector:  # Milvus upserts whole rows: a metadata-only change keeps its vector
            vectors = self._rows([row["doc_id"] for row in keep_vector], ["vector"])
            rows.extend({**row, "vector": vectors[row["doc_id"]]["vector"]} for row in keep_vector)
        for chunk in chunks(rows, ROWS_PER_REQUEST):
            _call("upsert", self._client.upsert, self._row.collection, list(chunk))
        for id_chunk in chunks(gone, IDS_PER_QUERY):
            _call("delete", self._client.delete, self._row.collection,
                  filter=schema.id_list(list(id_chunk)))
        self._row = replace(self._row, generation=self._row.generation + 1, count=self._count(),
                            fields=tuple(sorted(set(self._row.fields) | fields)), updated_at=utc_now())
        self._backend.write_row(self._row)
        stats.generation = self._row.generation
        return stats


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


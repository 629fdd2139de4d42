"""Collection: the public handle on one collection (FAISS index + SQLite metadata + manifest).

It opens and creates collections, serves reads and holds the write lock; the generation it
serves and the commit protocol that moves it on live in its base, storage.faiss.generations.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import (
    CollectionUnavailable,
    DocumentNotFound,
    ManifestMismatch,
    StorageError,
)
from storage.faiss import passage_search
from storage.faiss.folder import build_empty, chunking_fields, file_identity, index_file
from storage.faiss.folder import read_info as read_info  # re-exported
from storage.faiss.generations import Generations
from storage.faiss.hits import dense_hits, lexical_hits
from storage.faiss.integrity import CHECKSUM_KEY, database_problem, is_damage, unavailable
from storage.faiss.metadata import MetadataStore, ReaderPool
from storage.faiss.passages import CHUNKING_KEY
from storage.faq_store import FaqConfig, read_faq_config, write_faq_config
from storage.fileops import sweep_temp_files, write_failure
from storage.filters import Filter
from storage.index_types import IndexSpec, SearchParams
from storage.info import StoredDocument
from storage.locks import WriterLock, in_process_writer
from storage.manifest import Manifest, ModelInfo, check_model, read_manifest, write_manifest
from storage.records import (
    DB_FILE,
    Chunking,
    CommitStats,
    DocumentInput,
    Hit,
    content_hash,
    validate_name,
)

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class Collection(Generations):
    """Thread-safe handle on one collection: many concurrent searches, one writer at a time."""

    def __init__(self, folder: Path, name: str, model: ModelInfo, created_at: str) -> None:
        super().__init__(folder, name, model)
        self.created_at = created_at
        self._identity = file_identity(folder / DB_FILE)
        self._write_mutex = threading.Lock()
        self._reload_mutex = threading.Lock()
        self._readers = ReaderPool(folder / DB_FILE)
        self._writer_store: MetadataStore | None = None
        self.unavailable: str | None = None  # why requests are refused (a damaged database)
        self._documents = (-1, 0)  # (generation, documents) cached for `count`
        try:
            with self._reading() as store:
                self.chunking = Chunking.from_json(store.get_meta(CHUNKING_KEY))
                problem = database_problem(store.conn)
                if problem is not None:
                    raise unavailable(name, folder, problem)
                self._index, self._generation = self._load_committed(store)
                if not store.lexical_current():
                    self._update_lexical_index()
        except BaseException:
            self._readers.close()  # a handle that failed to open keeps no connection
            raise

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path, name: str) -> Collection:
        info = read_info(data_dir, name)
        try:
            return cls(Path(data_dir) / name, name, info.model, info.created_at)
        except (sqlite3.Error, ValueError) as exc:
            raise unavailable(name, Path(data_dir) / name, f"unreadable: {exc}") from exc

    @classmethod
    def create(cls, data_dir: Path, name: str, model: ModelInfo,
               index: IndexSpec | None = None, chunking: Chunking | None = None) -> Collection:
        """Create an empty collection atomically (built in a temp folder, then renamed).

        `index` (default `auto`) is the index type of a new collection; an existing one keeps
        its own (change it with `CollectionWriter.set_index`). So does `chunking`: a new
        collection with one stores passages (storage.faiss.passages), without, one vector per document.
        """
        data_dir = Path(data_dir)
        folder = data_dir / validate_name(name)
        data_dir.mkdir(parents=True, exist_ok=True)
        if folder.exists() and not (folder / DB_FILE).exists():
            raise StorageError(f"{folder} exists but is not a collection (no {DB_FILE}); "
                               "choose another name or remove the folder")
        if not folder.exists():
            tmp = data_dir / f".{name}.creating-{uuid.uuid4().hex[:8]}"
            try:
                build_empty(tmp, name, model, index or IndexSpec(), chunking)
            except (OSError, sqlite3.Error, RuntimeError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                failure = write_failure(exc, f"new collection '{name}'", data_dir)
                if failure is None:
                    raise
                raise failure from exc
            try:
                os.rename(tmp, folder)
            except OSError:  # another process created it first; use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(data_dir, name)

    @classmethod
    def open_or_create(cls, data_dir: Path, name: str, model: ModelInfo,
                       index: IndexSpec | None = None,
                       chunking: Chunking | None = None) -> Collection:
        """Open `name`, creating it for `model` (and `chunking`) if missing; a different model is an error."""
        collection = cls.create(data_dir, name, model, index, chunking)
        try:
            check_model(name, collection.model, model.name, model.dimension)
        except ManifestMismatch:
            collection.close()
            raise
        return collection

    # -- state ---------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    @property
    def count(self) -> int:
        """Documents in the committed generation served."""
        if self.chunking is None:
            return self._index.count
        generation = self._generation
        if self._documents[0] != generation:
            with self._reading() as store:
                self._documents = (generation, store.count())
        return self._documents[1]

    @property
    def passage_count(self) -> int | None:
        """Passages in the generation served; None when each document is one vector."""
        return None if self.chunking is None else self._index.count

    def replaced_on_disk(self) -> bool:
        """True if the folder was deleted or recreated since this handle opened it."""
        try:
            return file_identity(self.folder / DB_FILE) != self._identity
        except FileNotFoundError:
            return True

    def fields(self) -> list[str]:
        with self._reading() as store:
            return store.fields()

    def manifest(self) -> Manifest:
        with self._reading() as store:
            updated_at = store.get_meta("updated_at") or self.created_at
            recorded = store.get_meta(CHECKSUM_KEY) or ""
        generation, _, checksum = recorded.partition(":")
        return Manifest(name=self.name, model=self.model, count=self.count,
                        generation=self._generation, created_at=self.created_at,
                        updated_at=updated_at, index_file=index_file(self._generation),
                        index=self.index_info(),
                        index_checksum=checksum if generation == str(self._generation) else "",
                        **chunking_fields(self.chunking, self._index.count))

    @contextmanager
    def _reading(self) -> Iterator[MetadataStore]:
        """A read connection; a damaged database makes this handle refuse every later request."""
        if self.unavailable is not None:
            raise CollectionUnavailable(self.unavailable)
        try:
            with self._readers.store() as store:
                yield store
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            self.unavailable = unavailable(self.name, self.folder, str(exc)).message
            logger.error("%s", self.unavailable)
            raise CollectionUnavailable(self.unavailable) from exc

    @property
    def index_spec(self) -> IndexSpec:
        """The index type and parameters the collection asks for (stored in its database)."""
        return self._index.spec

    def index_info(self) -> dict[str, Any]:
        """The index type in use and the parameters every reader searches with."""
        index = self._index
        return {"type": index.layout.kind, "spec": index.spec.to_dict(),
                "layout": index.layout.__dict__}

    def close(self) -> None:
        self._readers.close()
        if self._writer_store is not None:
            self._writer_store.close()
            self._writer_store = None

    # -- loading -------------------------------------------------------------
    def refresh(self) -> bool:
        """Swap in a newer committed generation written by another process, if any.

        One thread reloads; the others keep answering from the generation they have.
        """
        return self._reload(blocking=False)

    def _reload(self, *, blocking: bool) -> bool:
        with self._reading() as store:
            if store.generation() <= self._generation:
                return False
            if not self._reload_mutex.acquire(blocking=blocking):
                return False
            try:
                if store.generation() <= self._generation:  # another thread reloaded meanwhile
                    return False
                index, generation = self._load_committed(store)
                with self._rw.writing():
                    if generation <= self._generation:
                        return False
                    self._index, self._generation = index, generation
            finally:
                self._reload_mutex.release()
        return True

    def _update_lexical_index(self) -> None:
        """Bring the lexical index up to date (MetadataStore.update_lexical; idempotent, one
        transaction)."""
        store = MetadataStore(self.folder / DB_FILE)
        try:
            store.begin()
            try:
                store.update_lexical()
                store.commit()
            except BaseException:
                store.rollback()
                raise
        finally:
            store.close()

    # -- reading -------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, filter_: Filter | None = None,
               params: SearchParams | None = None) -> list[list[Hit]]:
        """Top-k documents per query vector by cosine similarity (vectors L2-normalised).

        `params` overrides the collection's efSearch / nprobe for this search.
        """
        self.refresh()
        with self._reading() as store:
            allowed = store.matching_rowids(filter_) if filter_ else None
            if allowed is not None and len(allowed) == 0:
                return [[] for _ in range(len(vectors))]
            with self._rw.reading():
                if self._index.count == 0:
                    return [[] for _ in range(len(vectors))]
                if store.chunked:
                    return passage_search.dense(store, self._index, vectors, k, allowed, params)
                _, ids = self._index.search(vectors, k, allowed, params)
                rows = store.get_by_rowids(sorted({int(i) for i in ids.ravel() if i >= 0}))
        # An approximate index may return more candidates than k (rerank): keep the best k.
        return [dense_hits(query, id_row, rows)[:k] for query, id_row in zip(vectors, ids, strict=True)]

    def lexical_search(self, texts: Sequence[str], k: int,
                       filter_: Filter | None = None) -> list[list[Hit]]:
        """Top-k documents per query text by BM25 over the lexical index (`score` = BM25)."""
        self.refresh()
        with self._reading() as store:
            if store.chunked:
                return [passage_search.lexical(store, text, k, filter_) for text in texts]
            ranked = [store.lexical_search(text, k, filter_) for text in texts]
            rows = store.get_by_rowids(sorted({rowid for found in ranked for rowid, _ in found}))
        return [lexical_hits(found, rows) for found in ranked]

    def lexical_coverage(self, texts: Sequence[str]) -> list[float]:
        """Per query text, the share of its terms that occur in this collection."""
        with self._reading() as store:
            return [store.lexical_coverage(text) for text in texts]

    def doc_ids(self) -> set[str]:
        """Every document id (for small collections such as an FAQ's)."""
        with self._reading() as store:
            return {str(row[0]) for row in store.conn.execute("SELECT doc_id FROM documents")}

    # -- FAQ settings ----------------------------------------------------------
    def faq_config(self) -> FaqConfig | None:
        """The FAQ settings (faq.json beside the collection), or None if it is not an FAQ."""
        return read_faq_config(self.folder)

    def set_faq_config(self, config: FaqConfig) -> None:
        """Store the FAQ settings (faq.json, replaced atomically; no new generation)."""
        write_faq_config(self.folder, config)

    def get(self, doc_id: str) -> StoredDocument:
        with self._reading() as store:
            doc = store.get_by_doc_id(doc_id)
        if doc is None:
            raise DocumentNotFound(f"document '{doc_id}' not found in collection '{self.name}'")
        return doc

    def needs_vectors(self, docs: Sequence[tuple[str, str]]) -> list[bool]:
        """For (doc_id, text) pairs: True where the stored text differs or the id is new."""
        with self._reading() as store:
            existing = store.existing([doc_id for doc_id, _ in docs])
        return [
            doc_id not in existing or existing[doc_id].content_hash != content_hash(text)
            for doc_id, text in docs
        ]

    # -- writing -------------------------------------------------------------
    @contextmanager
    def writer(self, timeout: float = 0.0) -> Iterator[CollectionWriter]:
        """Hold the collection's write lock (in-process and across processes).

        Args:
            timeout: seconds to wait for another writer; 0 fails at once.
        """
        with in_process_writer(self._write_mutex, self.name, timeout):
            lock = WriterLock(self.folder / LOCK_FILE, self.name)
            lock.acquire(timeout)
            try:
                if self.replaced_on_disk():
                    raise StorageError(f"collection '{self.name}' was deleted or recreated on "
                                       "disk; reopen it")
                sweep_temp_files(self.folder)  # only writers make temp files, and we hold the lock
                if self._writer_store is None:
                    self._writer_store = MetadataStore(self.folder / DB_FILE)
                self._catch_up(self._writer_store)
                with self._rw.writing():  # a memory-mapped index is read-only: write a copy
                    self._index = self._index.writable()
                try:
                    yield CollectionWriter(self, self._writer_store)
                finally:
                    self._share_index()
            finally:
                lock.release()

    def _catch_up(self, store: MetadataStore) -> None:
        """As the writer: load the latest generation, repair a damaged index file and a manifest."""
        self._reload(blocking=True)
        if self._damaged_index:
            self._repair_index_file(store)
        try:
            manifest = read_manifest(self.folder)
        except StorageError:
            manifest = None
        if manifest is None or manifest.generation != self._generation:
            self._write_manifest()

    def _write_manifest(self) -> None:
        """Rewrite manifest.json; a failure is logged, not raised (SQLite, not it, is the record)."""
        try:
            write_manifest(self.folder, self.manifest())
        except (OSError, StorageError) as exc:
            logger.warning("collection '%s': manifest.json not rewritten (%s); the next write "
                           "rewrites it", self.name, exc)


class CollectionWriter:
    """What a holder of the write lock may do: commit upserts and deletes."""

    def __init__(self, collection: Collection, store: MetadataStore) -> None:
        self._collection = collection
        self._store = store

    @property
    def collection(self) -> Collection:
        return self._collection

    def commit(self, upserts: Sequence[DocumentInput] = (), deletes: Sequence[str] = (),
               index: IndexSpec | None = None) -> CommitStats:
        """Apply upserts and deletes as one new generation (or nothing, if nothing changed).

        Args:
            upserts: documents to add or replace (by id).
            deletes: ids to delete.
            index: a new index type / parameters; a change commits (and rebuilds the index
                from the stored vectors if its structure changes) even with no documents.
        """
        return self._collection._commit(self._store, upserts, deletes, index)

    def set_index(self, kind: str | None, params: dict[str, str]) -> CommitStats:
        """Commit a new index type and/or parameters (see storage.index_types).

        Raises:
            InvalidIndexSpec: an unknown type or parameter.
        """
        return self.commit(index=self._collection.index_spec.updated(kind, params))

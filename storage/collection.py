"""Collection: a FAISS index, its SQLite metadata and manifest, committed together.

Commit protocol (the only way a collection changes):
1. in one SQLite transaction, apply the rows and bump `generation` to g+1;
2. write the FAISS index for g+1 to `index-<g+1>.faiss` (temp file + os.replace);
3. COMMIT the transaction: this is the commit point;
4. rewrite manifest.json and remove index files older than g.
A crash before 3 leaves generation g (its index file is still there); a crash
after 3 leaves g+1 with its index file in place. SQLite also keeps every vector,
so a missing or damaged index file is rebuilt from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import (
    CollectionLocked,
    DocumentNotFound,
    IndexNotFound,
    InvalidCollectionName,
    ManifestMismatch,
    StorageError,
)
from storage.locks import ReadWriteLock, WriterLock
from storage.manifest import Manifest, ModelInfo, check_model, write_manifest
from storage.metadata import DB_FILE, Filter, MetadataStore, StoredDocument, create_schema
from storage.vector_index import FaissIndex

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LOCK_FILE = ".lock"


@dataclass(frozen=True, kw_only=True)
class DocumentInput:
    """A document to upsert; `vector` may be None when its text is already stored unchanged."""

    doc_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None


@dataclass(kw_only=True)
class CommitStats:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    missing: list[str] = field(default_factory=list)
    generation: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True, kw_only=True)
class Hit:
    doc_id: str
    score: float
    text: str
    metadata: dict[str, Any]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidCollectionName(
            f"invalid collection name '{name}': use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def list_collections(data_dir: Path) -> list[str]:
    if not data_dir.is_dir():
        return []
    return sorted(
        p.name for p in data_dir.iterdir()
        if p.is_dir() and NAME_PATTERN.fullmatch(p.name) and (p / DB_FILE).exists()
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _index_file(generation: int) -> str:
    return f"index-{generation}.faiss"


def _metadata_json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False)


class Collection:
    """Thread-safe handle on one collection: many concurrent searches, one writer at a time."""

    def __init__(self, folder: Path, name: str, model: ModelInfo, created_at: str) -> None:
        self.folder = folder
        self.name = name
        self.model = model
        self.created_at = created_at
        self._rw = ReadWriteLock()
        self._write_mutex = threading.Lock()
        self._reload_mutex = threading.Lock()
        self._local = threading.local()
        self._stores: list[MetadataStore] = []
        self._stores_lock = threading.Lock()
        self._writer_store: MetadataStore | None = None
        self._index, self._generation = self._load_committed(self._reader())

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path, name: str) -> Collection:
        folder = Path(data_dir) / validate_name(name)
        if not (folder / DB_FILE).exists():
            raise IndexNotFound(f"collection '{name}' does not exist in {data_dir}")
        store = MetadataStore(folder / DB_FILE)
        try:
            model_json = store.get_meta("model")
            created_at = store.get_meta("created_at") or ""
        finally:
            store.close()
        if model_json is None:
            raise StorageError(f"collection '{name}' has no model recorded in {DB_FILE}")
        return cls(folder, name, ModelInfo(**json.loads(model_json)), created_at)

    @classmethod
    def create(cls, data_dir: Path, name: str, model: ModelInfo) -> Collection:
        """Create an empty collection atomically (built in a temp folder, then renamed)."""
        data_dir = Path(data_dir)
        folder = data_dir / validate_name(name)
        data_dir.mkdir(parents=True, exist_ok=True)
        if folder.exists() and not (folder / DB_FILE).exists():
            raise StorageError(f"{folder} exists but is not a collection (no {DB_FILE}); "
                               "choose another name or remove the folder")
        if not folder.exists():
            tmp = data_dir / f".{name}.creating-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            created_at = _now()
            meta = {"model": json.dumps(model.__dict__), "created_at": created_at,
                    "generation": "0", "name": name}
            create_schema(tmp / DB_FILE, meta)
            FaissIndex.create(model.dimension).save(tmp / _index_file(0))
            write_manifest(tmp, Manifest(name=name, model=model, count=0, generation=0,
                                         created_at=created_at, updated_at=created_at,
                                         index_file=_index_file(0)))
            try:
                os.rename(tmp, folder)
            except OSError:  # another process created it first; use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(data_dir, name)

    @classmethod
    def open_or_create(cls, data_dir: Path, name: str, model: ModelInfo) -> Collection:
        """Open `name`, creating it for `model` if missing; a different model is an error."""
        collection = cls.create(data_dir, name, model)
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
        return self._index.count

    def fields(self) -> list[str]:
        return self._reader().fields()

    def manifest(self) -> Manifest:
        return Manifest(
            name=self.name, model=self.model, count=self.count, generation=self._generation,
            created_at=self.created_at, updated_at=self._reader().get_meta("updated_at") or
            self.created_at, index_file=_index_file(self._generation),
        )

    def close(self) -> None:
        with self._stores_lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
            if self._writer_store is not None:
                self._writer_store.close()
                self._writer_store = None

    def _reader(self) -> MetadataStore:
        """One connection per thread: sqlite3 connections must not cross threads."""
        store: MetadataStore | None = getattr(self._local, "store", None)
        if store is None:
            store = MetadataStore(self.folder / DB_FILE)
            self._local.store = store
            with self._stores_lock:
                self._stores.append(store)
        return store

    # -- loading -------------------------------------------------------------
    def _load_committed(self, store: MetadataStore) -> tuple[FaissIndex, int]:
        """Load the index of the committed generation, rebuilding it from SQLite if needed."""
        store.conn.execute("BEGIN")  # one snapshot: generation, count and vectors agree
        try:
            generation = store.generation()
            expected = store.count()
            path = self.folder / _index_file(generation)
            index: FaissIndex | None = None
            if path.exists():
                try:
                    index = FaissIndex.load(path)
                except StorageError:
                    index = None
            if index is None or index.count != expected or index.dimension != self.model.dimension:
                index = FaissIndex.create(self.model.dimension)
                for ids, vectors in store.iter_vectors(self.model.dimension):
                    index.add(ids, vectors)
            return index, generation
        finally:
            store.conn.execute("COMMIT")

    def refresh(self) -> bool:
        """Swap in a newer committed generation written by another process, if any."""
        if self._reader().generation() <= self._generation:
            return False
        with self._reload_mutex:
            index, generation = self._load_committed(self._reader())
            with self._rw.writing():
                if generation <= self._generation:
                    return False
                self._index, self._generation = index, generation
        return True

    # -- reading -------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, filter_: Filter | None = None) -> list[list[Hit]]:
        """Top-k documents per query vector by cosine similarity (vectors L2-normalised)."""
        self.refresh()
        reader = self._reader()
        allowed = reader.matching_rowids(filter_) if filter_ else None
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in range(len(vectors))]
        with self._rw.reading():
            if self._index.count == 0:
                return [[] for _ in range(len(vectors))]
            scores, ids = self._index.search(vectors, k, allowed)
            rows = reader.get_by_rowids(sorted({int(i) for i in ids.ravel() if i >= 0}))
        return [
            [Hit(doc_id=rows[int(i)].doc_id, score=float(s), text=rows[int(i)].text,
                 metadata=rows[int(i)].metadata)
             for s, i in zip(score_row, id_row, strict=True) if int(i) in rows]
            for score_row, id_row in zip(scores, ids, strict=True)
        ]

    def get(self, doc_id: str) -> StoredDocument:
        doc = self._reader().get_by_doc_id(doc_id)
        if doc is None:
            raise DocumentNotFound(f"document '{doc_id}' not found in collection '{self.name}'")
        return doc

    def needs_vectors(self, docs: Sequence[tuple[str, str]]) -> list[bool]:
        """For (doc_id, text) pairs: True where the stored text differs or the id is new."""
        existing = self._reader().existing([doc_id for doc_id, _ in docs])
        return [
            doc_id not in existing or existing[doc_id].content_hash != content_hash(text)
            for doc_id, text in docs
        ]

    # -- writing -------------------------------------------------------------
    @contextmanager
    def writer(self, timeout: float = 0.0) -> Iterator[CollectionWriter]:
        """Hold the collection's write lock (in-process and across processes)."""
        acquired = (self._write_mutex.acquire(timeout=timeout) if timeout > 0
                    else self._write_mutex.acquire(blocking=False))
        if not acquired:
            raise CollectionLocked(f"collection '{self.name}' is being written by another request "
                                   "in this process; retry when it has finished")
        lock = WriterLock(self.folder / LOCK_FILE, self.name)
        try:
            lock.acquire(timeout)
            try:
                self.refresh()
                if self._writer_store is None:
                    self._writer_store = MetadataStore(self.folder / DB_FILE)
                yield CollectionWriter(self, self._writer_store)
            finally:
                lock.release()
        finally:
            self._write_mutex.release()

    def _commit(self, store: MetadataStore, upserts: Sequence[DocumentInput],
                deletes: Sequence[str]) -> CommitStats:
        stats = CommitStats(generation=self._generation)
        with self._rw.writing():
            store.begin()
            try:
                add_ids, add_vectors, remove_ids, fields = self._stage(store, upserts, deletes, stats)
                if not stats.changed:
                    store.rollback()
                    return stats
                generation = self._generation + 1
                store.add_fields(fields)
                store.set_meta("generation", str(generation))
                store.set_meta("updated_at", _now())
                self._index.remove(np.array(remove_ids, dtype=np.int64))
                if add_vectors:
                    self._index.add(np.array(add_ids, dtype=np.int64), np.stack(add_vectors))
                self._index.save(self.folder / _index_file(generation))
                store.commit()
            except BaseException:
                store.rollback()
                # The in-memory index may hold uncommitted changes: go back to what is on disk.
                self._index, self._generation = self._load_committed(store)
                raise
            self._generation = stats.generation = generation
        self._after_commit(generation)
        return stats

    def _stage(self, store: MetadataStore, upserts: Sequence[DocumentInput],
               deletes: Sequence[str], stats: CommitStats
               ) -> tuple[list[int], list[np.ndarray], list[int], set[str]]:
        """Write rows inside the open transaction; return the FAISS changes to make."""
        # A repeated id: the last upsert wins; an id also deleted in this commit: the delete wins.
        doomed = set(deletes)
        upserted = {doc.doc_id for doc in upserts}
        latest = {doc.doc_id: doc for doc in upserts if doc.doc_id not in doomed}
        existing = store.existing([*latest, *doomed])
        add_ids: list[int] = []
        add_vectors: list[np.ndarray] = []
        remove_ids: list[int] = []
        fields: set[str] = set()
        for doc in latest.values():
            digest, meta_json = content_hash(doc.text), _metadata_json(doc.metadata)
            fields.update(doc.metadata)
            old = existing.get(doc.doc_id)
            if old is not None and old.content_hash == digest:
                if old.metadata_json == meta_json:
                    stats.unchanged += 1
                else:
                    store.update(old.rowid, doc.text, meta_json, digest, None)
                    stats.updated += 1
                continue
            vector = self._checked_vector(doc)
            if old is None:
                add_ids.append(store.insert(doc.doc_id, doc.text, meta_json, digest, vector))
                stats.added += 1
            else:
                store.update(old.rowid, doc.text, meta_json, digest, vector)
                remove_ids.append(old.rowid)
                add_ids.append(old.rowid)
                stats.updated += 1
            add_vectors.append(vector)
        for doc_id in dict.fromkeys(deletes):
            gone = existing.get(doc_id)
            if gone is None:
                if doc_id not in upserted:
                    stats.missing.append(doc_id)
                continue
            store.delete([gone.rowid])
            remove_ids.append(gone.rowid)
            stats.deleted += 1
        return add_ids, add_vectors, remove_ids, fields

    def _checked_vector(self, doc: DocumentInput) -> np.ndarray:
        if doc.vector is None:
            raise ValueError(f"document '{doc.doc_id}' is new or changed but has no vector")
        vector = np.asarray(doc.vector, dtype=np.float32)
        if vector.shape != (self.model.dimension,):
            raise ValueError(
                f"vector for '{doc.doc_id}' has shape {vector.shape}, "
                f"collection '{self.name}' expects ({self.model.dimension},)"
            )
        # Inner product is cosine only for unit vectors; anything else would score wrongly.
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3:
            raise ValueError(f"vector for '{doc.doc_id}' is not L2-normalised (norm {norm})")
        return vector

    def _after_commit(self, generation: int) -> None:
        """Refresh manifest.json and drop index files older than the previous generation."""
        write_manifest(self.folder, self.manifest())
        for path in self.folder.glob("index-*.faiss*"):
            number = path.name.split("-", 1)[1].split(".", 1)[0]
            if number.isdigit() and int(number) < generation - 1:
                path.unlink(missing_ok=True)


class CollectionWriter:
    """What a holder of the write lock may do: commit upserts and deletes."""

    def __init__(self, collection: Collection, store: MetadataStore) -> None:
        self._collection = collection
        self._store = store

    @property
    def collection(self) -> Collection:
        return self._collection

    def commit(self, upserts: Sequence[DocumentInput] = (), deletes: Sequence[str] = ()
               ) -> CommitStats:
        """Apply upserts and deletes as one new generation (or nothing, if nothing changed)."""
        return self._collection._commit(self._store, upserts, deletes)

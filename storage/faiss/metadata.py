"""MetadataStore: documents, their vectors and the committed generation in one SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from storage.faiss import lexical, passages
from storage.filters import (  # noqa: F401  (Filter re-exported)
    MAX_LISTED_FIELDS,
    Filter,
    FilterValue,
    check_filter_size,
    filter_values,
    unknown_field,
)
from storage.info import StoredDocument
from storage.records import (
    DB_FILE,  # noqa: F401  (re-exported)
    PassageSpan,
    chunks,
)


@dataclass(frozen=True, kw_only=True)
class ExistingState:
    """What the store holds for one document id, to decide what an upsert changes."""

    rowid: int
    content_hash: str
    metadata_json: str


def connect(path: Path) -> sqlite3.Connection:
    """Open with autocommit (isolation_level=None) so transactions are explicit BEGIN/COMMIT."""
    # check_same_thread=False only so close() may run on another thread; each connection
    # is still used by one thread at a time (per-thread readers, one locked writer).
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    # FULL: a committed generation survives power loss, not only a killed process.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def create_schema(path: Path, meta: dict[str, str], chunked: bool = False) -> None:
    """Create the tables of a new collection database (WAL mode, readers never block).

    Args:
        path: the database file to create.
        meta: the rows of the `meta` table.
        chunked: give it a passages table (its vectors are passages; storage.faiss.passages).
    """
    db = sqlite_utils.Database(connect(path))
    db.enable_wal()
    # AUTOINCREMENT: a deleted row id is never reused, so a FAISS id means one document forever.
    db.execute(
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_id TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            vector BLOB NOT NULL
        )"""
    )
    db.table("fields").create({"name": str}, pk="name")
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("meta").insert_all([{"key": k, "value": v} for k, v in meta.items()])
    lexical.create_table(db.conn)
    if chunked:
        passages.create_table(db.conn)
        db.table("meta").insert({"key": passages.LEXICAL_UNIT_KEY, "value": "document"})
    db.conn.close()


class ReaderPool:
    """Idle read connections, checked out per operation (threads come and go; connections don't)."""

    def __init__(self, path: Path, max_idle: int = 8) -> None:
        self._path = path
        self._max_idle = max_idle
        self._idle: list[MetadataStore] = []
        self._lock = threading.Lock()

    @contextmanager
    def store(self) -> Iterator[MetadataStore]:
        with self._lock:
            store = self._idle.pop() if self._idle else None
        if store is None:
            store = MetadataStore(self._path)
        try:
            yield store
        finally:
            self._give_back(store)

    def _give_back(self, store: MetadataStore) -> None:
        reusable = not store.conn.in_transaction  # never hand out one left mid-transaction
        with self._lock:
            if reusable and len(self._idle) < self._max_idle:
                self._idle.append(store)
                return
        store.close()

    def close(self) -> None:
        with self._lock:
            for store in self._idle:
                store.close()
            self._idle.clear()


class MetadataStore:
    """One SQLite connection; the owner serialises use of it (one per thread or a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = connect(path)
        # Fixed at creation: a chunked collection's vectors (FAISS ids) are passages.
        self.chunked = passages.has_table(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- reads -------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def count(self) -> int:
        """Documents stored."""
        return int(self.conn.execute("SELECT count(*) FROM documents").fetchone()[0])

    def vector_count(self) -> int:
        """Vectors stored (what the FAISS index holds): passages in a chunked collection."""
        return passages.count(self.conn) if self.chunked else self.count()

    def existing(self, doc_ids: Sequence[str]) -> dict[str, ExistingState]:
        found: dict[str, ExistingState] = {}
        for chunk in chunks(list(doc_ids), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT doc_id, id, content_hash, metadata FROM documents WHERE doc_id IN ({marks})"
            for doc_id, rowid, content_hash, metadata in self.conn.execute(sql, chunk):
                found[doc_id] = ExistingState(
                    rowid=rowid, content_hash=content_hash, metadata_json=metadata
                )
        return found

    def get_by_rowids(self, rowids: Sequence[int]) -> dict[int, tuple[StoredDocument, np.ndarray]]:
        """Documents and their stored vectors by row id (missing ids are left out)."""
        docs: dict[int, tuple[StoredDocument, np.ndarray]] = {}
        for chunk in chunks([int(r) for r in rowids], 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, doc_id, text, metadata, vector FROM documents WHERE id IN ({marks})"
            for rowid, doc_id, text, metadata, vector in self.conn.execute(sql, chunk):
                doc = StoredDocument(rowid=rowid, doc_id=doc_id, text=text,
                                     metadata=json.loads(metadata))
                docs[rowid] = (doc, np.frombuffer(vector, dtype=np.float32))
        return docs

    def get_passages(self, ids: Sequence[int]
                     ) -> dict[int, tuple[StoredDocument, np.ndarray, PassageSpan]]:
        """Passages by passage id: their document, vector and span (missing ids left out)."""
        found = passages.get(self.conn, ids)
        docs = self.get_by_rowids(sorted({document for document, _, _ in found.values()}))
        return {pid: (docs[document][0], vector, span)
                for pid, (document, span, vector) in found.items() if document in docs}

    def get_by_doc_id(self, doc_id: str) -> StoredDocument | None:
        row = self.conn.execute(
            "SELECT id, doc_id, text, metadata FROM documents WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return StoredDocument(rowid=row[0], doc_id=row[1], text=row[2], metadata=json.loads(row[3]))

    def iter_vectors(self, dimension: int, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids, vectors) in batches, for rebuilding the FAISS index from SQLite."""
        if self.chunked:
            yield from passages.iter_vectors(self.conn, dimension, batch)
            return
        cursor = self.conn.execute("SELECT id, vector FROM documents ORDER BY id")
        while rows := cursor.fetchmany(batch):
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            yield ids, vectors.reshape(len(rows), dimension)

    def fields(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM fields ORDER BY name")]

    def present_fields(self, names: Sequence[str]) -> set[str]:
        """Which of `names` are metadata fields (index lookups: cost independent of the total)."""
        found: set[str] = set()
        for chunk in chunks(list(names), 500):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.conn.execute(
                f"SELECT name FROM fields WHERE name IN ({marks})", chunk))
        return found

    def field_sample(self) -> tuple[list[str], int]:
        """The first MAX_LISTED_FIELDS field names and how many there are, for error messages."""
        names = [r[0] for r in self.conn.execute(
            "SELECT name FROM fields ORDER BY name LIMIT ?", (MAX_LISTED_FIELDS,))]
        total = int(self.conn.execute("SELECT count(*) FROM fields").fetchone()[0])
        return names, total

    def matching_rowids(self, filter_: Filter) -> np.ndarray:
        """FAISS ids whose document's metadata equals every filter value (a list means any of)."""
        condition, params = self.filter_condition(filter_)
        if self.chunked:  # the FAISS ids of matching documents are their passages' ids
            return passages.matching(self.conn, condition, params)
        sql = "SELECT id FROM documents WHERE " + condition
        return np.array([r[0] for r in self.conn.execute(sql, params)], dtype=np.int64)

    def filter_condition(self, filter_: Filter) -> tuple[str, list[Any]]:
        """The SQL condition on `documents` (and its parameters) that a metadata filter means."""
        check_filter_size(filter_)
        present = self.present_fields(list(filter_))
        clauses: list[str] = []
        params: list[Any] = []
        for field, value in filter_.items():
            if field not in present:
                raise unknown_field(field, *self.field_sample())
            values = filter_values(field, value)
            path = '$."' + field + '"'
            clauses.append("(" + " OR ".join(_typed_in(path, values, params)) + ")")
        return " AND ".join(clauses), params

    def lexical_search(self, query: str, k: int, filter_: Filter | None = None) -> list[tuple[int, float]]:
        """Top-k (row id, BM25 score) for `query`, restricted to rows matching `filter_`."""
        where = self.filter_condition(filter_) if filter_ else None
        return lexical.search(self.conn, query, k, where)

    def passage_spans(self, rowids: Sequence[int]) -> dict[int, list[PassageSpan]]:
        """The passages of these document rows, in order (a chunked collection's)."""
        return passages.spans_of(self.conn, rowids)

    def lexical_coverage(self, query: str) -> float:
        return lexical.coverage(self.conn, query)

    def lexical_current(self) -> bool:
        """Whether the lexical index exists and holds documents (see `update_lexical`)."""
        if not lexical.has_table(self.conn):
            return False
        return not self.chunked or self.get_meta(passages.LEXICAL_UNIT_KEY) == "document"

    def update_lexical(self) -> int:
        """Bring the lexical index up to date, in the caller's transaction: create and fill it in a
        collection made before it existed; index documents instead of passages in a chunked one
        made when it indexed passages. Returns the documents indexed."""
        lexical.create_table(self.conn)
        if not self.chunked:
            return lexical.backfill(self.conn)
        indexed = lexical.reindex_documents(self.conn)
        self.set_meta(passages.LEXICAL_UNIT_KEY, "document")
        return indexed

    # -- writes (inside a transaction the caller opened) -------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def insert(self, doc_id: str, text: str, metadata_json: str, content_hash: str,
               vector: np.ndarray) -> int:
        cursor = self.conn.execute(
            "INSERT INTO documents (doc_id, text, metadata, content_hash, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            (doc_id, text, metadata_json, content_hash, _blob(vector)),
        )
        assert cursor.lastrowid is not None
        lexical.index_text(self.conn, cursor.lastrowid, text)
        return int(cursor.lastrowid)

    def update(self, rowid: int, text: str, metadata_json: str, content_hash: str,
               vector: np.ndarray | None) -> None:
        if vector is None:
            self.conn.execute(
                "UPDATE documents SET metadata = ? WHERE id = ?", (metadata_json, rowid)
            )
            return
        self.conn.execute(
            "UPDATE documents SET text = ?, metadata = ?, content_hash = ?, vector = ? WHERE id = ?",
            (text, metadata_json, content_hash, _blob(vector), rowid),
        )
        lexical.index_text(self.conn, rowid, text)

    def delete(self, rowids: Sequence[int]) -> None:
        self.conn.executemany("DELETE FROM documents WHERE id = ?", [(int(r),) for r in rowids])
        lexical.remove(self.conn, rowids)

    def add_fields(self, names: set[str]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO fields (name) VALUES (?)", [(n,) for n in sorted(names)]
        )

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _typed_in(path: str, values: list[FilterValue], params: list[Any]) -> list[str]:
    """SQL alternatives for metadata[path] in values, keeping JSON types apart (true is not 1)."""
    alternatives = []
    bools = sorted({"true" if v else "false" for v in values if isinstance(v, bool)})
    if bools:
        params.append(path)
        alternatives.append(f"json_type(metadata, ?) IN ({', '.join(repr(b) for b in bools)})")
    groups = (([v for v in values if isinstance(v, str)], "'text'"),
              ([v for v in values if isinstance(v, int | float) and not isinstance(v, bool)],
               "'integer', 'real'"))
    for group, json_types in groups:
        if group:
            params.extend([path, *group, path])
            marks = ",".join("?" * len(group))
            alternatives.append(f"(json_extract(metadata, ?) IN ({marks}) "
                                f"AND json_type(metadata, ?) IN ({json_types}))")
    return alternatives


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()

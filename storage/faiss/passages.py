"""Passages table: in a chunked collection each document's vectors are its passages' vectors.

A collection made with a chunking setting (meta key `chunking`) has a `passages` table, and
there the FAISS ids are passage ids, not document row ids; documents keep their text and
metadata (and an empty `vector`), and the lexical index holds documents, as everywhere. A
collection without the table (every collection made before passages existed) has one vector
per document, as before.
Passages are written and removed with their document inside the caller's transaction, so an
upsert or delete changes all of a document's passages in the same generation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from storage.records import PassageInput, PassageSpan, chunks

TABLE = "passages"
CHUNKING_KEY = "chunking"  # meta key: the collection's Chunking as JSON (absent: no passages)
# Meta key, set when the lexical index holds documents. Chunked collections made before it
# indexed passages; opening one re-indexes its documents (storage.faiss.collection).
LEXICAL_UNIT_KEY = "lexical_unit"
EMPTY_VECTOR = np.zeros(0, np.float32)  # the `vector` of a chunked collection's document row


def create_table(conn: sqlite3.Connection) -> None:
    # AUTOINCREMENT, as for documents: a passage id (a FAISS id) is never reused.
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        document INTEGER NOT NULL,
        position INTEGER NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        vector BLOB NOT NULL
    )""")
    conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_document ON {TABLE} (document, position)")


def has_table(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                         (TABLE,)).fetchone()
    return int(found[0]) == 1


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])


def insert(conn: sqlite3.Connection, document: int, passages: Sequence[PassageInput]) -> list[int]:
    """Store one document's passages; returns their new ids."""
    ids = []
    for passage in passages:
        span = passage.span
        cursor = conn.execute(
            f"INSERT INTO {TABLE} (document, position, start_char, end_char, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            (document, span.index, span.start, span.end,
             np.ascontiguousarray(passage.vector, dtype=np.float32).tobytes()))
        assert cursor.lastrowid is not None
        ids.append(int(cursor.lastrowid))
    return ids


def remove_of(conn: sqlite3.Connection, documents: Sequence[int]) -> list[int]:
    """Delete every passage of these document rows; returns their ids."""
    ids: list[int] = []
    for chunk in chunks([int(d) for d in documents], 500):
        marks = ",".join("?" * len(chunk))
        ids.extend(r[0] for r in conn.execute(
            f"SELECT id FROM {TABLE} WHERE document IN ({marks})", chunk))
        conn.execute(f"DELETE FROM {TABLE} WHERE document IN ({marks})", chunk)
    return ids


def iter_vectors(conn: sqlite3.Connection, dimension: int,
                 batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (passage ids, vectors) in batches, for rebuilding the FAISS index."""
    cursor = conn.execute(f"SELECT id, vector FROM {TABLE} ORDER BY id")
    while rows := cursor.fetchmany(batch):
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        yield ids, vectors.reshape(len(rows), dimension)


def get(conn: sqlite3.Connection, ids: Sequence[int]
        ) -> dict[int, tuple[int, PassageSpan, np.ndarray]]:
    """(document row id, span, vector) by passage id (missing ids are left out)."""
    found: dict[int, tuple[int, PassageSpan, np.ndarray]] = {}
    for chunk in chunks([int(i) for i in ids], 500):
        marks = ",".join("?" * len(chunk))
        sql = (f"SELECT id, document, position, start_char, end_char, vector FROM {TABLE} "
               f"WHERE id IN ({marks})")
        for pid, document, position, start, end, vector in conn.execute(sql, chunk):
            found[pid] = (document, PassageSpan(index=position, start=start, end=end),
                          np.frombuffer(vector, dtype=np.float32))
    return found


def matching(conn: sqlite3.Connection, condition: str, params: list[Any]) -> np.ndarray:
    """Passage ids whose document meets an SQL condition on `documents` (a metadata filter)."""
    sql = (f"SELECT {TABLE}.id FROM {TABLE} JOIN documents ON documents.id = {TABLE}.document "
           f"WHERE {condition}")
    return np.array([r[0] for r in conn.execute(sql, params)], dtype=np.int64)


def spans_of(conn: sqlite3.Connection, documents: Sequence[int]) -> dict[int, list[PassageSpan]]:
    """The passage spans of these document rows, in order (documents without any left out)."""
    found: dict[int, list[PassageSpan]] = {}
    for chunk in chunks([int(d) for d in documents], 500):
        marks = ",".join("?" * len(chunk))
        sql = (f"SELECT document, position, start_char, end_char FROM {TABLE} "
               f"WHERE document IN ({marks}) ORDER BY document, position")
        for document, position, start, end in conn.execute(sql, chunk):
            found.setdefault(document, []).append(PassageSpan(index=position, start=start, end=end))
    return found


def problems(conn: sqlite3.Connection) -> list[str]:
    """What `semsearch check` reports: passages without a document, documents without passages."""
    found = []
    orphans = int(conn.execute(f"SELECT count(*) FROM {TABLE} WHERE document NOT IN "
                               "(SELECT id FROM documents)").fetchone()[0])
    if orphans:
        found.append(f"{orphans} passages belong to no stored document")
    bare = int(conn.execute(f"SELECT count(*) FROM documents WHERE id NOT IN "
                            f"(SELECT document FROM {TABLE})").fetchone()[0])
    if bare:
        found.append(f"{bare} documents have no passages")
    return found

"""Lexical channel of the FAISS backend: a BM25 index over the documents in SQLite FTS5.

FTS5 indexes the space-joined tokens of storage.tokens (its own tokenisers cannot split
Chinese); unicode61 only splits them again at the spaces.
The FTS5 row id is the document's row id, kept in step by the writer in the same transaction
as the document rows. A chunked collection indexes whole documents too, not passages: BM25
over the whole document ranks better than its best passage's (docs/indexing.md, Measured).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from storage.tokens import (  # noqa: F401  (re-exported for the tokenizer study and tests)
    CJK_SPLITTERS,
    MAX_QUERY_TERMS,
    Tokenizer,
    iter_tokens,
    token_text,
    tokenize,
)

LEXICAL_TABLE = "lexical"
TERMS_TABLE = "lexical_terms"  # fts5vocab over it: which terms occur in the collection


def match_expression(tokens: Iterable[str]) -> str | None:
    """An FTS5 MATCH expression: any of the tokens (BM25 ranks documents matching more and rarer ones
    higher). None when there is nothing to match."""
    unique = list(dict.fromkeys(tokens))[:MAX_QUERY_TERMS]
    if not unique:
        return None
    # Tokens hold only letters and digits, so quoting cannot be escaped out of.
    return " OR ".join(f'"{token}"' for token in unique)


def create_table(conn: sqlite3.Connection) -> None:
    # unicode61 only splits the pre-tokenised text at the spaces between tokens; remove_diacritics 0
    # keeps tokens exactly as tokenize() wrote them.
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {LEXICAL_TABLE} USING fts5("
                 "tokens, tokenize = 'unicode61 remove_diacritics 0')")
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {TERMS_TABLE} USING fts5vocab({LEXICAL_TABLE}, 'row')")


def has_table(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT count(*) FROM sqlite_master WHERE name IN (?, ?)",
                         (LEXICAL_TABLE, TERMS_TABLE)).fetchone()
    return int(found[0]) == 2


def coverage(conn: sqlite3.Connection, query: str) -> float:
    """The share of the query's distinct terms that occur anywhere in the collection.

    A Chinese query against an English collection shares almost no terms with it: the few it
    does share (numbers, names) make BM25 rankings that are mostly noise, so hybrid search
    weighs the lexical channel by this share.
    """
    terms = list(dict.fromkeys(tokenize(query)))[:MAX_QUERY_TERMS]
    if not terms:
        return 0.0
    marks = ",".join("?" * len(terms))
    found = conn.execute(f"SELECT count(*) FROM {TERMS_TABLE} WHERE term IN ({marks})", terms).fetchone()
    return int(found[0]) / len(terms)


def index_text(conn: sqlite3.Connection, rowid: int, text: str) -> None:
    """Add or replace the tokens of one document (inside the caller's transaction)."""
    conn.execute(f"DELETE FROM {LEXICAL_TABLE} WHERE rowid = ?", (rowid,))
    conn.execute(f"INSERT INTO {LEXICAL_TABLE} (rowid, tokens) VALUES (?, ?)",
                 (rowid, token_text(text)))


def remove(conn: sqlite3.Connection, rowids: Sequence[int]) -> None:
    conn.executemany(f"DELETE FROM {LEXICAL_TABLE} WHERE rowid = ?", [(int(r),) for r in rowids])


def backfill(conn: sqlite3.Connection) -> int:
    """Index every document not yet in the lexical table (collections made before it existed)."""
    rows = conn.execute(f"SELECT id, text FROM documents WHERE id NOT IN "
                        f"(SELECT rowid FROM {LEXICAL_TABLE})").fetchall()
    conn.executemany(f"INSERT INTO {LEXICAL_TABLE} (rowid, tokens) VALUES (?, ?)",
                     [(rowid, token_text(text)) for rowid, text in rows])
    return len(rows)


def reindex_documents(conn: sqlite3.Connection) -> int:
    """Replace whatever the lexical table holds by every document (a chunked collection made
    when it indexed passages)."""
    conn.execute(f"DELETE FROM {LEXICAL_TABLE}")
    return backfill(conn)


def search(conn: sqlite3.Connection, query: str, k: int,
           where: tuple[str, list[Any]] | None = None) -> list[tuple[int, float]]:
    """Top-k (row id, BM25 score) for one query, best first; BM25 here is higher-is-better.

    Args:
        conn: a connection to the collection's database.
        query: the query text.
        k: how many rows at most.
        where: an SQL condition on `documents` and its parameters (a metadata filter); only
            rows meeting it are returned.
    """
    expression = match_expression(tokenize(query))
    if expression is None:
        return []
    sql = f"SELECT rowid, -bm25({LEXICAL_TABLE}) FROM {LEXICAL_TABLE} WHERE {LEXICAL_TABLE} MATCH ?"
    params: list[Any] = [expression]
    if where is not None:
        condition, where_params = where
        sql += f" AND rowid IN (SELECT id FROM documents WHERE {condition})"
        params.extend(where_params)
    sql += " ORDER BY rank LIMIT ?"
    params.append(int(k))
    return [(int(rowid), float(score)) for rowid, score in conn.execute(sql, params)]

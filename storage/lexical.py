"""Lexical channel: a BM25 index over the documents in SQLite FTS5, tokenised for Chinese and English.

SQLite's own tokenisers cannot split Chinese (unicode61 keeps a run of Han characters as one
token; trigram misses two-character words, the most common length). So text is tokenised here
and FTS5 indexes the space-joined tokens:
- runs of CJK characters become their characters plus overlapping character bigrams.
  `scripts/tokenizer_study.py` compares this with bigrams only, unigrams only and jieba words
  on CMRC2018, XQuAD zh and an LCQMC FAQ: unigrams + bigrams is best on both retrieval sets
  and within 0.003 of the best FAQ accuracy, needs no dictionary, works for Japanese kana and
  Korean too, and indexes 9x faster than jieba (numbers in the README);
- everything else becomes lower-cased words of letters and digits (NFKC-normalised, so
  full-width Ｌａｔｉｎ and half-width forms match).
The FTS5 row id is the document's row id, kept in step by the writer in the same transaction
as the document rows.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

LEXICAL_TABLE = "lexical"
TERMS_TABLE = "lexical_terms"  # fts5vocab over it: which terms occur in the collection
MAX_QUERY_TERMS = 256  # bounds the cost of one MATCH; longer queries keep their first terms

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_RUNS = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")

Tokenizer = Callable[[str], list[str]]


def _cjk_bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _cjk_unigrams(run: str) -> list[str]:
    return list(run)


def _cjk_both(run: str) -> list[str]:
    return _cjk_unigrams(run) + (_cjk_bigrams(run) if len(run) > 1 else [])


CJK_SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    "bigram": _cjk_bigrams,
    "unigram": _cjk_unigrams,
    "unigram+bigram": _cjk_both,
}


def tokenize(text: str, cjk: str = "unigram+bigram") -> list[str]:
    """Tokens of `text` as the lexical index sees them.

    Args:
        text: any text.
        cjk: how runs of CJK characters are split: `unigram+bigram` (the index's choice),
            `bigram` or `unigram` (kept for the tokenizer study).

    Returns:
        Lower-cased word tokens and CJK character n-grams, in text order.
    """
    return list(_iter_tokens(text, CJK_SPLITTERS[cjk]))


def _iter_tokens(text: str, split_cjk: Callable[[str], list[str]]) -> Iterator[str]:
    normal = unicodedata.normalize("NFKC", text).casefold()
    for match in _RUNS.finditer(normal):
        cjk_run, word = match.groups()
        if cjk_run:
            yield from split_cjk(cjk_run)
        else:
            yield word


def token_text(text: str) -> str:
    """The space-joined tokens of `text`, as the index stores them.

    Joined a slice at a time: a list of every token of a long text costs about 60 bytes per
    token (650 MB for a 50 MB text), the joined string about one byte per character.
    """
    tokens = _iter_tokens(text, CJK_SPLITTERS["unigram+bigram"])
    pieces = []
    while batch := list(islice(tokens, 65_536)):
        pieces.append(" ".join(batch))
    return " ".join(pieces)


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


def search(conn: sqlite3.Connection, query: str, k: int,
           where: tuple[str, list[Any]] | None = None,
           ids: str = "SELECT id FROM documents") -> list[tuple[int, float]]:
    """Top-k (row id, BM25 score) for one query, best first; BM25 here is higher-is-better.

    Args:
        conn: a connection to the collection's database.
        query: the query text.
        k: how many rows at most.
        where: an SQL condition on `documents` and its parameters (a metadata filter); only
            rows meeting it are returned.
        ids: the SELECT of the row ids the condition restricts (passage ids in a chunked
            collection, storage.passages.id_query).
    """
    expression = match_expression(tokenize(query))
    if expression is None:
        return []
    sql = f"SELECT rowid, -bm25({LEXICAL_TABLE}) FROM {LEXICAL_TABLE} WHERE {LEXICAL_TABLE} MATCH ?"
    params: list[Any] = [expression]
    if where is not None:
        condition, where_params = where
        sql += f" AND rowid IN ({ids} WHERE {condition})"
        params.extend(where_params)
    sql += " ORDER BY rank LIMIT ?"
    params.append(int(k))
    return [(int(rowid), float(score)) for rowid, score in conn.execute(sql, params)]

"""Lexical channel: tokenisation, the FTS5 index kept in step with writes, BM25 and filters."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from storage import Collection, DocumentInput
from storage.faiss.lexical import match_expression, tokenize
from storage.faiss.metadata import DB_FILE
from tests.storage.helpers import commit, make_vectors

TEXTS = {
    "card": ("信用卡的额度怎么提高", {"lang": "zh", "topic": "card"}),
    "loan": ("贷款利率是多少", {"lang": "zh", "topic": "loan"}),
    "card-en": ("How do I raise my credit card limit?", {"lang": "en", "topic": "card"}),
    "weather": ("今天天气很好", {"lang": "zh", "topic": "chat"}),
}


def _docs() -> list[DocumentInput]:
    vectors = make_vectors(len(TEXTS))
    return [DocumentInput(doc_id=doc_id, text=text, metadata=meta, vector=vector)
            for (doc_id, (text, meta)), vector in zip(TEXTS.items(), vectors, strict=True)]


def _ids(collection: Collection, query: str, **kwargs: object) -> list[str]:
    return [hit.doc_id for hit in collection.lexical_search([query], 10, **kwargs)[0]]  # type: ignore[arg-type]


def test_chinese_runs_become_characters_and_bigrams_and_words_stay_whole() -> None:
    assert tokenize("信用卡额度") == ["信", "用", "卡", "额", "度", "信用", "用卡", "卡额", "额度"]
    assert tokenize("卡") == ["卡"]
    assert tokenize("COVID-19 疫苗 works") == ["covid", "19", "疫", "苗", "疫苗", "works"]
    # NFKC: full-width letters and digits match their ASCII forms
    assert tokenize("ＧＰＵ　１２３") == ["gpu", "123"]
    assert tokenize("  ，。!? ") == []
    assert tokenize("信用卡", cjk="unigram") == ["信", "用", "卡"]
    assert tokenize("信用卡", cjk="bigram") == ["信用", "用卡"]


def test_match_expression_quotes_unique_tokens_and_handles_nothing() -> None:
    assert match_expression(["a", "b", "a"]) == '"a" OR "b"'
    assert match_expression([]) is None
    # FTS5 operators typed by a user are plain words, not syntax
    assert match_expression(tokenize('NOT near AND "x')) == '"not" OR "near" OR "and" OR "x"'


def test_bm25_ranks_the_document_sharing_the_rare_words_first(
        new_collection: Callable[..., Collection]) -> None:
    collection = new_collection()
    commit(collection, _docs())
    assert _ids(collection, "信用卡额度")[0] == "card"
    assert _ids(collection, "credit card limit") == ["card-en"]
    hits = collection.lexical_search(["贷款的利率"], 10)[0]
    assert hits[0].doc_id == "loan"
    assert hits[0].lexical_score == hits[0].score > 0 and hits[0].dense_score is None
    assert collection.lexical_search(["!!!", "zzzz"], 10) == [[], []]


def test_filters_restrict_lexical_hits_like_dense_ones(new_collection: Callable[..., Collection]) -> None:
    collection = new_collection()
    commit(collection, _docs())
    assert _ids(collection, "信用卡 credit card", filter_={"topic": "card", "lang": "en"}) == ["card-en"]
    assert set(_ids(collection, "信用卡 credit card", filter_={"lang": ["zh", "en"]})) == {"card", "card-en"}
    assert _ids(collection, "信用卡", filter_={"lang": "fr"}) == []


def test_updates_and_deletes_keep_the_lexical_index_in_step(
        new_collection: Callable[..., Collection]) -> None:
    collection = new_collection()
    docs = _docs()
    commit(collection, docs)
    changed = DocumentInput(doc_id="loan", text="房贷提前还款", metadata={"lang": "zh"},
                            vector=make_vectors(1, seed=5)[0])
    commit(collection, [changed], deletes=["weather"])
    assert _ids(collection, "利率") == []  # the old text no longer matches
    assert _ids(collection, "还款") == ["loan"]
    assert _ids(collection, "天气") == []
    with sqlite3.connect(collection.folder / DB_FILE) as conn:
        indexed = conn.execute("SELECT count(*) FROM lexical").fetchone()[0]
    assert indexed == collection.count == 3


def test_a_collection_made_before_the_lexical_index_gets_one_on_open(
        new_collection: Callable[..., Collection], data_root: Path) -> None:
    collection = new_collection("old")
    commit(collection, _docs())
    collection.close()
    with sqlite3.connect(data_root / "old" / DB_FILE) as conn:
        conn.execute("DROP TABLE lexical")
    reopened = Collection.open(data_root, "old")
    try:
        assert _ids(reopened, "信用卡")[0] == "card"
        assert np.isfinite(reopened.lexical_search(["贷款"], 1)[0][0].score)
    finally:
        reopened.close()

"""Which queries an English-only model is left out of in hybrid search."""

from __future__ import annotations

from indexer.encoding.languages import dense_understands, is_english_only, mostly_cjk


def test_mostly_cjk_counts_letters_and_digits_only() -> None:
    assert mostly_cjk("信用卡额度怎么提高")
    assert mostly_cjk("GPU 显卡价格")  # 4 CJK of 7 letters
    assert not mostly_cjk("how do I raise my 信用卡 limit")
    assert not mostly_cjk("?!…")
    assert mostly_cjk("こんにちは") and mostly_cjk("안녕하세요")


def test_english_only_models_skip_cjk_queries_and_multilingual_ones_do_not() -> None:
    assert is_english_only("all-MiniLM-L6-v2")
    assert is_english_only("sentence-transformers/all-mpnet-base-v2")
    assert not is_english_only("multilingual-e5-small")
    queries = ["信用卡额度", "credit card limit"]
    assert dense_understands("all-MiniLM-L6-v2", queries) == [False, True]
    assert dense_understands("multilingual-e5-small", queries) == [True, True]
    assert dense_understands("Alibaba-NLP/gte-multilingual-base", queries) == [True, True]

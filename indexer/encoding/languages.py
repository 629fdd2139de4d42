"""Which queries a model can embed meaningfully: English-only models and CJK queries.

An English-only model maps Chinese text to near-arbitrary vectors (all-MiniLM-L6-v2 scores
nDCG@10 0.24 on XQuAD zh, where BM25 scores 0.96), and any weight hybrid search gives such a
dense ranking only pulls good lexical hits down. So hybrid search leaves the dense channel
out for a query written mostly in CJK characters when the collection's model is known to be
English-only. Models not listed are taken to be multilingual.
"""

from __future__ import annotations

import re

# Canonical names (and common hub ids) of English-only sentence-transformers models.
ENGLISH_ONLY_MODELS = frozenset({
    "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2",
    "all-MiniLM-L12-v2", "sentence-transformers/all-MiniLM-L12-v2",
    "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2",
    "thenlper/gte-small", "thenlper/gte-base", "thenlper/gte-large",
    "BAAI/bge-small-en-v1.5", "BAAI/bge-base-en-v1.5", "BAAI/bge-large-en-v1.5",
    "bge-small-en-v1.5",
})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD_CHAR = re.compile(r"[^\W_]")


def is_english_only(model: str) -> bool:
    return model in ENGLISH_ONLY_MODELS or model.rsplit("/", 1)[-1] in ENGLISH_ONLY_MODELS


def mostly_cjk(text: str) -> bool:
    """True when at least half of the text's letters and digits are CJK characters."""
    letters = len(_WORD_CHAR.findall(text))
    return letters > 0 and 2 * len(_CJK.findall(text)) >= letters


def dense_understands(model: str, texts: list[str]) -> list[bool]:
    """Per query: whether the model's embedding of it is worth using in hybrid search."""
    english_only = is_english_only(model)
    return [not (english_only and mostly_cjk(text)) for text in texts]

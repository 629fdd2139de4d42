"""Milvus lexical channel: native BM25 full-text search over our own Chinese-aware tokens.

Milvus computes BM25 itself (a BM25 function turns an analysed VARCHAR field into a sparse
vector). Its analysers cannot reproduce our tokens: milvus-lite offers `standard` (one
token per CJK character, so no bigrams) and `jieba` (words, which scripts/tokenizer_study.py
found worse than character unigrams + bigrams on CMRC2018 and XQuAD zh). So the analysis is
ours (storage.tokens, the one the FAISS backend indexes) and Milvus gets each token spelled
in ASCII letters and digits, which its `standard` analyser keeps whole:
- a token of ASCII letters and digits: `a` + the token ("cat" -> "acat");
- any other token: `x` + 4 base-36 digits per character ("北京" -> "x" + 8 digits).
Every token gets a prefix and the digits have a fixed width, so no two tokens share a
spelling. Both backends then rank by BM25 over the same terms (k1 1.2, b 0.75), and hybrid
search fuses the channels with the same code (storage.fusion), so the modes are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient

from storage.errors import SemsearchError
from storage.milvus.client import call, queries_per_request
from storage.tokens import MAX_QUERY_TERMS, iter_tokens, tokenize

LEXICAL_FIELD = "lexical"  # the spelled tokens (analysed by Milvus)
SPARSE_FIELD = "lexical_bm25"  # the BM25 function's output
MAX_LEXICAL_BYTES = 65_535  # Milvus VARCHAR limit: longer token texts keep their first tokens
ANALYZER = {"tokenizer": "standard"}
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
TERMS_PER_REQUEST = 1024  # well below Milvus's limit of 16,384 queries per search


def spell(token: str) -> str:
    """`token` in letters and digits only, uniquely (see the module docstring)."""
    if token.isascii():
        return "a" + token
    return "x" + "".join(_base36(ord(char)) for char in token)


def _base36(number: int) -> str:
    digits = []
    for _ in range(4):  # 36**4 > 0x10FFFF, the largest code point
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
    return "".join(reversed(digits))


def document_tokens(text: str) -> str:
    """The spelled tokens of a document, cut at a token boundary to fit Milvus's VARCHAR."""
    pieces: list[str] = []
    size = 0
    for token in iter_tokens(text):
        spelled = spell(token)
        size += len(spelled) + 1
        if size > MAX_LEXICAL_BYTES + 1:
            break
        pieces.append(spelled)
    return " ".join(pieces)


def query_terms(text: str) -> list[str]:
    """The distinct spelled terms of a query (at most MAX_QUERY_TERMS, as on FAISS)."""
    return [spell(token) for token in list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS]]


def add_fields(schema: Any) -> None:
    """Add the token field, its BM25 sparse vector and the function that links them."""
    schema.add_field(LEXICAL_FIELD, DataType.VARCHAR, max_length=MAX_LEXICAL_BYTES,
                     enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="lexical_bm25", function_type=FunctionType.BM25,
                                 input_field_names=[LEXICAL_FIELD],
                                 output_field_names=[SPARSE_FIELD]))


def add_index(params: Any) -> None:
    """The BM25 index; its parameters match SQLite FTS5's bm25() defaults."""
    params.add_index(field_name=SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX",
                     metric_type="BM25", params={"bm25_k1": 1.2, "bm25_b": 0.75})


def has_lexical(description: dict[str, Any]) -> bool:
    """Whether a collection (as `describe_collection` shows it) has the BM25 field."""
    return any(field.get("name") == SPARSE_FIELD for field in description.get("fields", []))


class LexicalIndexMissing(SemsearchError):
    """A Milvus collection written before the BM25 field existed: dense search only."""

    code = "lexical_index_missing"
    status = 409


def missing(name: str) -> LexicalIndexMissing:
    """The error for lexical or hybrid search on a collection without the BM25 field."""
    return LexicalIndexMissing(
        f"milvus collection '{name}' was written by an older semsearch without the BM25 field, "
        "so it answers mode 'dense' only. Add the field with `semsearch upgrade -c "
        f"{name} --storage milvus` (copies the documents and vectors; stop writers first), or "
        "re-index its source into a new collection")


def search(client: MilvusClient, collection: str, texts: Sequence[str], k: int,
           expression: str) -> list[list[dict[str, Any]]]:
    """Per query text, Milvus's BM25 hits (best first; `score` >= 0), with text and metadata."""
    found = search_entities(client, collection, texts, k, expression, ["text", "metadata"])
    return [[{"doc_id": str(hit["doc_id"]), "score": score, "text": hit["entity"]["text"],
              "metadata": hit["entity"]["metadata"]} for hit, score in hits] for hits in found]


def search_entities(client: MilvusClient, collection: str, texts: Sequence[str], k: int,
                    expression: str, output_fields: list[str]
                    ) -> list[list[tuple[dict[str, Any], float]]]:
    """Per query text, Milvus's BM25 hits as (hit, BM25) pairs, best first.

    Args:
        client: the connected client.
        collection: the Milvus collection (documents, or passages in a chunked collection).
        texts: the query texts; one without terms finds nothing.
        k: hits per text.
        expression: a filter expression ("" for none).
        output_fields: the fields each hit's `entity` carries.
    """
    terms = [" ".join(query_terms(text)) for text in texts]
    asked = [i for i, spelled in enumerate(terms) if spelled]
    results: list[list[tuple[dict[str, Any], float]]] = [[] for _ in texts]
    if not asked:
        return results
    found: list[Any] = []
    step = queries_per_request(k)
    for start in range(0, len(asked), step):
        found.extend(call("lexical search", client.search, collection,
                          data=[terms[i] for i in asked[start:start + step]],
                          anns_field=SPARSE_FIELD, limit=k, filter=expression,
                          output_fields=output_fields, search_params={"metric_type": "BM25"}))
    for i, hits in zip(asked, found, strict=True):
        # milvus-lite reports BM25 negated (a distance), a server as is: the magnitude is BM25.
        results[i] = [(hit, abs(float(hit["distance"]))) for hit in hits]
    return results


def terms_present(client: MilvusClient, collection: str, terms: Sequence[str]) -> list[bool]:
    """Per (spelled) term, whether any document holds it.

    One BM25 search per batch of terms, each term a query of its own with limit 1: a term
    no document holds scores nothing, and Milvus returns no hit for it.
    """
    found: list[bool] = []
    for start in range(0, len(terms), TERMS_PER_REQUEST):
        batch = list(terms[start:start + TERMS_PER_REQUEST])
        hits = call("lexical term lookup", client.search, collection, data=batch,
                    anns_field=SPARSE_FIELD, limit=1, output_fields=[],
                    search_params={"metric_type": "BM25"})
        found.extend(len(term_hits) > 0 for term_hits in hits)
    return found

"""Milvus layout of semsearch collections: names, schemas, catalog rows, filter tags, checks.

Pure functions plus the schema builders; storage.milvus.store does the talking to Milvus.

Metadata filters keep the FAISS backend's typed equality (a filter value `true` does not
match a stored `1`, and `1` matches `1.0`). A Milvus expression on a JSON field cannot
promise that everywhere (milvus-lite compares JSON the Python way, where True == 1), so each
document carries `filter_tags`: one hash per top-level scalar metadata value, of its key,
JSON type and canonical value. A filter becomes `array_contains_any` over those hashes:
hex strings only, so no user text is ever spliced into an expression.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, MilvusClient

from storage.errors import SemsearchError, StorageError
from storage.filters import (
    Filter,
    FilterValue,
    check_filter_size,
    filter_values,
    require_known_field,
)
from storage.manifest import ModelInfo
from storage.milvus import lexical
from storage.records import DocumentInput

CATALOG = "semsearch_catalog"
PREFIX = "semsearch_"
MAX_ID_BYTES = 2048
MAX_TEXT_BYTES = 65_535  # Milvus VARCHAR limit (bytes of UTF-8)
MAX_TAGS = 4096  # Milvus ARRAY max_capacity limit
TAG_CHARS = 32
MAX_TOP_K = 16_384  # Milvus's limit on `limit` in one search
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
INDEX_TYPES = ("flat", "hnsw")


class BackendLimit(SemsearchError):
    """A document the Milvus backend cannot store (text or id too long, too many fields)."""

    code = "backend_limit"
    status = 400


def milvus_name(name: str) -> str:
    """The Milvus collection of a semsearch collection; injective ('-' and '.' are not allowed)."""
    escaped = name.replace("_", "__").replace("-", "_d").replace(".", "_p")
    return PREFIX + escaped


def quote(text: str) -> str:
    """A Milvus expression string literal (the escapes Milvus and milvus-lite both read)."""
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(raw, escaped)
    return f'"{text}"'


def id_list(doc_ids: list[str]) -> str:
    return "doc_id in [" + ", ".join(quote(doc_id) for doc_id in doc_ids) + "]"


def _typed(value: Any) -> str | None:
    """Type and canonical value of a filterable scalar; None for what a filter never matches."""
    if isinstance(value, bool):
        return f"b:{'true' if value else 'false'}"
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, int):
        return f"n:{value}"
    if isinstance(value, float) and math.isfinite(value):
        # SQLite compares 1 and 1.0 as equal numbers; so must this.
        return f"n:{int(value)}" if value.is_integer() and abs(value) < 2**63 else f"n:{value!r}"
    return None  # null, objects and lists: the FAISS backend's filter never matches them either


def tag(field: str, value: FilterValue) -> str:
    typed = _typed(value)
    assert typed is not None
    return _digest(field, typed)


def _digest(field: str, typed: str) -> str:
    payload = json.dumps([field, typed], ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(payload, digest_size=TAG_CHARS // 2).hexdigest()


def filter_tags(doc_id: str, metadata: dict[str, Any]) -> list[str]:
    """One tag per top-level scalar metadata value."""
    tags = [_digest(key, typed) for key, value in metadata.items()
            if (typed := _typed(value)) is not None]
    if len(tags) > MAX_TAGS:
        raise BackendLimit(f"document '{doc_id}' has {len(tags)} filterable metadata fields; "
                           f"the milvus backend allows {MAX_TAGS}")
    return tags


def filter_expression(filter_: Filter, known: set[str]) -> str:
    """The Milvus boolean expression of a metadata filter (every field; any of a list).

    Raises:
        UnknownFilterField: a field no document of the collection has.
        InvalidFilter: a value that is not a string, number or boolean (or a list of them).
    """
    check_filter_size(filter_)
    clauses = []
    for field, value in filter_.items():
        require_known_field(field, known)
        tags = sorted({tag(field, item) for item in filter_values(field, value)})
        clauses.append("array_contains_any(filter_tags, [" + ", ".join(f'"{t}"' for t in tags) + "])")
    return " and ".join(clauses)


def check_document(doc: DocumentInput) -> None:
    """BackendLimit when `doc`'s id or text is longer than Milvus stores."""
    if len(doc.doc_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise BackendLimit(f"document id '{doc.doc_id[:40]}...' is longer than the milvus backend's "
                           f"{MAX_ID_BYTES} bytes")
    size = len(doc.text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise BackendLimit(f"document '{doc.doc_id}' has {size} bytes of text; the milvus backend "
                           f"stores at most {MAX_TEXT_BYTES} bytes per document (split it)")


def document_row(doc: DocumentInput, digest: str) -> dict[str, Any]:
    """One document's row, without its vector."""
    return {"doc_id": doc.doc_id, "text": doc.text, "content_hash": digest,
            "metadata": doc.metadata, "filter_tags": filter_tags(doc.doc_id, doc.metadata),
            lexical.LEXICAL_FIELD: lexical.document_tokens(doc.text)}


def data_schema(dimension: int) -> Any:
    """Schema of one collection's documents: the id is the primary key, so upsert replaces."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("filter_tags", DataType.ARRAY, element_type=DataType.VARCHAR,
                     max_capacity=MAX_TAGS, max_length=TAG_CHARS)
    lexical.add_fields(schema)
    return schema


def data_index(client: MilvusClient, index: str) -> Any:
    """Inner product on L2-normalised vectors = cosine: exact (FLAT) or HNSW."""
    params = client.prepare_index_params()
    if index == "hnsw":
        params.add_index(field_name="vector", index_type="HNSW", metric_type="IP",
                         params=HNSW_PARAMS)
    else:
        params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
    lexical.add_index(params)
    return params


def search_params(index: str, k: int) -> dict[str, Any]:
    if index == "hnsw":
        return {"metric_type": "IP", "params": {"ef": max(64, k)}}
    return {"metric_type": "IP"}


def catalog_schema() -> Any:
    """One row per semsearch collection: model, generation, count, fields (Milvus needs a vector)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("uid", DataType.VARCHAR, max_length=64)
    schema.add_field("collection", DataType.VARCHAR, max_length=255)
    schema.add_field("model", DataType.VARCHAR, max_length=4096)
    schema.add_field("index_type", DataType.VARCHAR, max_length=16)
    schema.add_field("created_at", DataType.VARCHAR, max_length=64)
    schema.add_field("updated_at", DataType.VARCHAR, max_length=64)
    schema.add_field("generation", DataType.INT64)
    schema.add_field("doc_count", DataType.INT64)
    schema.add_field("fields", DataType.VARCHAR, max_length=65_535)
    schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
    return schema


def placeholder_index(client: MilvusClient) -> Any:
    """The index Milvus requires on a collection whose only vector is the 2-d placeholder."""
    params = client.prepare_index_params()
    params.add_index(field_name="placeholder", index_type="FLAT", metric_type="L2")
    return params


@dataclass(frozen=True, kw_only=True)
class CatalogRow:
    """What the catalog records of one collection."""

    name: str
    uid: str
    collection: str
    model: ModelInfo
    index_type: str
    created_at: str
    updated_at: str
    generation: int
    count: int
    fields: tuple[str, ...]

    def to_row(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "collection": self.collection,
                "model": json.dumps(self.model.__dict__), "index_type": self.index_type,
                "created_at": self.created_at, "updated_at": self.updated_at,
                "generation": self.generation, "doc_count": self.count,
                "fields": json.dumps(list(self.fields), ensure_ascii=False),
                "placeholder": [1.0, 0.0]}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CatalogRow:
        try:
            return cls(name=row["name"], uid=row["uid"], collection=row["collection"],
                       model=ModelInfo(**json.loads(row["model"])), index_type=row["index_type"],
                       created_at=row["created_at"], updated_at=row["updated_at"],
                       generation=int(row["generation"]), count=int(row["doc_count"]),
                       fields=tuple(json.loads(row["fields"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"milvus catalog row of '{row.get('name')}' is malformed: {exc}") from exc

"""Passages on Milvus: a chunked collection keeps one Milvus row per passage, in its own collection.

Layout (why): Milvus searches rows, so a passage must be a row to be found by its own vector
and its own BM25 terms; that is how Milvus users store chunks. A chunked semsearch collection
is two Milvus collections:
- documents (`semsearch_<name>`, the one the catalog names): id, text, content hash and
  metadata, as in a collection without passages, with a placeholder vector (Milvus requires
  one) instead of the document's; collection properties record the chunking and the name of
- passages (`semsearch_<name>_xpassages`; `_x` is no escape of storage.milvus.schema's, so no
  collection name can collide with it): one row per passage with the document's id and
  content hash, its position and character offsets, its vector, the document's filter tags
  (filters run on the passage rows) and the BM25 terms of the passage's text (not the text:
  a hit slices it from its document). Lexical search ranks whole documents by the documents
  collection's own BM25 field (storage.passage_ranking says why); the passages' terms are
  kept so that collections of either layout stay readable.
The text lives once, in the documents collection: repeating it on each passage row would
multiply storage by the passages per document and break the 65,535-byte VARCHAR limit sooner.

A passage's primary key is derived from its document's id, content hash and position. A
commit writes the new passages first, then the document rows, then deletes every passage of
the commit's ids whose content hash is not its document's now (the sweep). Readers only
serve passages whose hash matches their stored document, so a commit under way, or one cut
short by a crash, never shows a passage against another version of its text; re-running the
same job (or upsert) sweeps what a crash left, so every document ends with its passages
exactly once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from storage.commit_plan import PlannedUpsert
from storage.info import StoredDocument
from storage.milvus import lexical, schema
from storage.milvus.client import call, queries_per_request
from storage.passage_ranking import (
    Fetched,
    PassageMatch,
    lexical_passage,
    query_terms,
    rank_documents,
)
from storage.records import Chunking, Hit, PassageInput, PassageSpan, chunks

CHUNKING_PROPERTY = "semsearch.chunking"  # on the documents collection: the Chunking as JSON
PASSAGES_PROPERTY = "semsearch.passages"  # on the documents collection: its passages collection
SUFFIX = "_xpassages"
PLACEHOLDER = [1.0, 0.0]
ROWS_PER_REQUEST = 256
IDS_PER_QUERY = 500
FOUND_FIELDS = ["doc_id", "content_hash", "position", "start_char", "end_char"]

# Reads stored documents by id: {doc_id: {"text", "metadata", "content_hash"}}.
DocumentReader = Callable[[Sequence[str], list[str]], dict[str, dict[str, Any]]]


def count(client: MilvusClient, collection: str) -> int:
    """Rows in a Milvus collection (passages, in a passages collection)."""
    rows = call("count", client.query, collection, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def passages_name(documents: str) -> str:
    return documents + SUFFIX


def properties(chunking: Chunking, documents: str) -> dict[str, str]:
    """The documents collection's properties that make it chunked."""
    return {CHUNKING_PROPERTY: chunking.to_json(), PASSAGES_PROPERTY: passages_name(documents)}


def chunking_of(described: dict[str, Any]) -> Chunking | None:
    """The chunking a documents collection (as `describe_collection` shows it) records."""
    return Chunking.from_json((described.get("properties") or {}).get(CHUNKING_PROPERTY))


def passages_of(described: dict[str, Any]) -> str | None:
    return (described.get("properties") or {}).get(PASSAGES_PROPERTY)


def documents_schema() -> Any:
    """A chunked collection's documents: their vectors are their passages', their BM25 terms
    and filter tags their own (lexical search ranks whole documents)."""
    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=schema.MAX_ID_BYTES)
    fields.add_field("text", DataType.VARCHAR, max_length=schema.MAX_TEXT_BYTES)
    fields.add_field("content_hash", DataType.VARCHAR, max_length=64)
    fields.add_field("metadata", DataType.JSON)
    fields.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
    fields.add_field("filter_tags", DataType.ARRAY, element_type=DataType.VARCHAR,
                     max_capacity=schema.MAX_TAGS, max_length=schema.TAG_CHARS)
    lexical.add_fields(fields)
    return fields


def documents_index(client: MilvusClient) -> Any:
    params = schema.placeholder_index(client)
    lexical.add_index(params)
    return params


def passages_schema(dimension: int) -> Any:
    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("passage_id", DataType.VARCHAR, is_primary=True, max_length=64)
    fields.add_field("doc_id", DataType.VARCHAR, max_length=schema.MAX_ID_BYTES)
    fields.add_field("content_hash", DataType.VARCHAR, max_length=64)
    fields.add_field("position", DataType.INT64)
    fields.add_field("start_char", DataType.INT64)
    fields.add_field("end_char", DataType.INT64)
    fields.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    fields.add_field("filter_tags", DataType.ARRAY, element_type=DataType.VARCHAR,
                     max_capacity=schema.MAX_TAGS, max_length=schema.TAG_CHARS)
    lexical.add_fields(fields)
    return fields


def passage_id(doc_id: str, digest: str, position: int) -> str:
    """A passage's key: one per (document, text version, position); 32 hex digits + position."""
    payload = json.dumps([doc_id, digest], ensure_ascii=False).encode("utf-8", "surrogatepass")
    return f"{hashlib.blake2b(payload, digest_size=16).hexdigest()}:{position}"


def document_row(item: PlannedUpsert, searchable: bool) -> dict[str, Any]:
    """A chunked collection's document row; `searchable`: with the BM25 terms and filter tags
    of the documents schema (False for collections made before it had them)."""
    doc = item.doc
    row = {"doc_id": doc.doc_id, "text": doc.text, "content_hash": item.digest,
           "metadata": doc.metadata, "placeholder": PLACEHOLDER}
    if searchable:
        row |= {"filter_tags": schema.filter_tags(doc.doc_id, doc.metadata),
                lexical.LEXICAL_FIELD: lexical.document_tokens(doc.text)}
    return row


def passage_rows(item: PlannedUpsert, passages: Sequence[PassageInput]) -> list[dict[str, Any]]:
    doc, tags = item.doc, schema.filter_tags(item.doc.doc_id, item.doc.metadata)
    return [{"passage_id": passage_id(doc.doc_id, item.digest, p.span.index),
             "doc_id": doc.doc_id, "content_hash": item.digest, "position": p.span.index,
             "start_char": p.span.start, "end_char": p.span.end,
             "vector": np.asarray(p.vector, dtype=np.float32).tolist(), "filter_tags": tags,
             lexical.LEXICAL_FIELD: lexical.document_tokens(doc.text[p.span.start:p.span.end])}
            for p in passages]


class MilvusPassages:
    """The passages collection of one chunked collection: writes, sweeps, searches, counts."""

    def __init__(self, client: MilvusClient, collection: str, index_type: str,
                 documents: DocumentReader, documents_lexical: str | None) -> None:
        """Args:
            documents_lexical: the documents collection where it has a BM25 field of its own
                (None: a collection made before, which ranks lexically by the best passage).
        """
        self._client, self.collection, self._index_type = client, collection, index_type
        self._documents = documents
        self.documents_lexical = documents_lexical

    def count(self) -> int:
        return count(self._client, self.collection)

    # -- writing (storage.milvus.store commits: write, then the documents, then sweep) --
    def write(self, upserts: Sequence[PlannedUpsert]) -> None:
        """Store the passages of new and changed documents; re-tag those of metadata changes."""
        rows = [row for item in upserts if item.passages is not None
                for row in passage_rows(item, item.passages)]
        retagged = {item.doc.doc_id: item for item in upserts if item.passages is None}
        for found in self._stored(list(retagged), ["position", "start_char", "end_char", "vector"]):
            item = retagged[found["doc_id"]]
            if found["content_hash"] == item.digest:  # Milvus upserts whole rows: keep the vector
                span = PassageSpan(index=int(found["position"]), start=int(found["start_char"]),
                                   end=int(found["end_char"]))
                vector = np.asarray(found["vector"], dtype=np.float32)
                rows.extend(passage_rows(item, [PassageInput(span=span, vector=vector)]))
        for chunk in chunks(rows, ROWS_PER_REQUEST):
            call("passage upsert", self._client.upsert, self.collection, list(chunk))

    def sweep(self, current: Mapping[str, str | None]) -> int:
        """Delete the passages of these ids whose content hash is not `current[id]` (None: all).

        Returns:
            How many passages were deleted.
        """
        stale = [row["passage_id"] for row in self._stored(list(current), [])
                 if row["content_hash"] != current.get(row["doc_id"])]
        for chunk in chunks(stale, IDS_PER_QUERY):
            call("passage delete", self._client.delete, self.collection, ids=list(chunk))
        return len(stale)

    def _stored(self, doc_ids: list[str], fields: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for chunk in chunks(doc_ids, IDS_PER_QUERY):
            found.extend(call("passage query", self._client.query, self.collection,
                              filter=schema.id_list(list(chunk)),
                              output_fields=["passage_id", "doc_id", "content_hash", *fields]))
        return found

    # -- reading (storage.passage_ranking groups passages into documents) --------
    def dense(self, vectors: np.ndarray, k: int, expression: str) -> list[list[Hit]]:
        """Top-k documents per query vector, each scored by its best passage's cosine."""
        def fetch(size: int) -> list[Fetched]:
            found: list[Any] = []
            step = queries_per_request(size)
            for start in range(0, len(vectors), step):
                found.extend(call("search", self._client.search, self.collection,
                                  data=vectors[start:start + step].tolist(), limit=size,
                                  filter=expression, anns_field="vector",
                                  output_fields=FOUND_FIELDS,
                                  search_params=schema.search_params(self._index_type, size)))
            return self._fetched([[(hit, float(hit["distance"])) for hit in hits] for hits in found])

        return rank_documents(fetch, k, schema.MAX_TOP_K, "dense")

    def lexical(self, texts: Sequence[str], k: int, expression: str) -> list[list[Hit]]:
        """Top-k documents per query text by BM25 over the whole document, each with the
        passage holding the most query terms (by the best passage's BM25 in older collections)."""
        if self.documents_lexical is None:
            def fetch(size: int) -> list[Fetched]:
                return self._fetched(lexical.search_entities(self._client, self.collection, texts,
                                                             size, expression, FOUND_FIELDS))

            return rank_documents(fetch, k, schema.MAX_TOP_K, "lexical")
        found = lexical.search_entities(self._client, self.documents_lexical, texts,
                                        min(k, schema.MAX_TOP_K), expression,
                                        ["text", "metadata", "content_hash"])
        spans = self._spans({str(hit["doc_id"]): hit["entity"]["content_hash"]
                             for hits in found for hit, _ in hits})
        return [self._lexical_hits(query_terms(text), hits, spans)
                for text, hits in zip(texts, found, strict=True)]

    @staticmethod
    def _lexical_hits(terms: list[str], hits: list[tuple[dict[str, Any], float]],
                      spans: Mapping[str, list[PassageSpan]]) -> list[Hit]:
        found = []
        for hit, score in hits:
            doc_id, entity = str(hit["doc_id"]), hit["entity"]
            found.append(Hit(doc_id=doc_id, score=score, text=entity["text"],
                             metadata=dict(entity["metadata"] or {}), lexical_score=score,
                             passage=lexical_passage(terms, entity["text"], spans.get(doc_id, []))))
        return found

    def _spans(self, hashes: Mapping[str, str]) -> dict[str, list[PassageSpan]]:
        """The passage spans of these documents' current text versions, in order."""
        spans: dict[str, list[PassageSpan]] = {}
        for row in self._stored(list(hashes), ["position", "start_char", "end_char"]):
            if row["content_hash"] == hashes[row["doc_id"]]:
                spans.setdefault(row["doc_id"], []).append(PassageSpan(
                    index=int(row["position"]), start=int(row["start_char"]),
                    end=int(row["end_char"])))
        return {doc_id: sorted(found, key=lambda span: span.index) for doc_id, found in spans.items()}

    def _fetched(self, found: list[list[tuple[dict[str, Any], float]]]) -> list[Fetched]:
        """Passage hits with their documents; a passage of another text version is left out."""
        ids = {hit["entity"]["doc_id"] for hits in found for hit, _ in hits}
        docs = self._documents(sorted(ids), ["text", "metadata", "content_hash"])
        fetched = []
        for hits in found:
            matches = []
            for hit, score in hits:
                entity = hit["entity"]
                doc = docs.get(entity["doc_id"])
                if doc is None or doc["content_hash"] != entity["content_hash"]:
                    continue
                span = PassageSpan(index=int(entity["position"]), start=int(entity["start_char"]),
                                   end=int(entity["end_char"]))
                stored = StoredDocument(rowid=-1, doc_id=entity["doc_id"], text=doc["text"],
                                        metadata=dict(doc["metadata"] or {}))
                matches.append(PassageMatch(doc=stored, span=span, score=score))
            fetched.append(Fetched(matches=matches, returned=len(hits)))
        return fetched

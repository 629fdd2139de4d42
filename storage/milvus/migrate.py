"""Bring a Milvus collection written before the BM25 field up to the current layout.

Milvus cannot add a function field to a collection, so the documents (with their vectors:
nothing is re-encoded) are copied into a new Milvus collection that has it, and the catalog
row is pointed at the copy under a new uid. Open handles see the new uid, count the
collection as replaced and reopen it; the old Milvus collection is dropped last. Run it while
no writer is writing the collection (Milvus has no lock across processes): a write to the
old collection during the copy would be lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pymilvus import MilvusClient

from storage.milvus import faq, lexical, schema
from storage.milvus.client import call
from storage.records import utc_now

COPY_BATCH = 256
COPIED_FIELDS = ["doc_id", "vector", "text", "content_hash", "metadata", "filter_tags"]


def add_lexical(client: MilvusClient, row: schema.CatalogRow,
                create: Callable[[str, Any, Any], None], index: Any,
                write_row: Callable[[schema.CatalogRow], None]) -> int:
    """Copy `row`'s collection into one with the BM25 field and switch the catalog to it.

    Args:
        client: the connected client.
        row: the collection's catalog row.
        create: creates, indexes and loads a Milvus collection (name, schema, index params).
        index: the vector index params of the copy (as the backend builds them).
        write_row: writes a catalog row.

    Returns:
        How many documents were copied.
    """
    uid = uuid.uuid4().hex
    target = f"{schema.milvus_name(row.name)}_v{uid[:8]}"
    call("create_collection", create, target, schema.data_schema(row.model.dimension), index)
    call("load", client.load_collection, row.collection)
    copied = 0
    iterator = call("query iterator", client.query_iterator, row.collection, batch_size=COPY_BATCH,
                    filter="", output_fields=COPIED_FIELDS)
    try:
        while batch := call("query iterator", iterator.next):
            rows = [{**{key: item[key] for key in COPIED_FIELDS},
                     lexical.LEXICAL_FIELD: lexical.document_tokens(item["text"])} for item in batch]
            call("insert", client.insert, target, rows)
            copied += len(rows)
    finally:
        iterator.close()
    settings = faq.read_config(client, row.name, row.uid)
    if settings is not None:  # the FAQ settings follow the collection to its new uid
        faq.write_config(client, row.name, uid, settings)
    write_row(replace(row, uid=uid, collection=target, generation=row.generation + 1,
                      updated_at=utc_now()))
    call("drop_collection", client.drop_collection, row.collection)
    return copied

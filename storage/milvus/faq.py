"""FAQ settings of Milvus collections: one row per FAQ in the `semsearch_faq` collection.

Kept apart from the catalog so that calibrating a threshold never rewrites a catalog row a
writer may be updating, and so catalogs written before FAQs ran on Milvus need no change.
Each row carries the collection's uid: a collection deleted and recreated under the same
name is not an FAQ until `faq import` makes it one again.
"""

from __future__ import annotations

import json
from typing import Any

from pymilvus import DataType, MilvusClient, MilvusException

from storage.errors import StorageError
from storage.faq_store import FaqConfig, config_from_json, config_to_json
from storage.milvus.client import call
from storage.milvus.schema import quote

FAQ_COLLECTION = "semsearch_faq"
MAX_CONFIG_BYTES = 65_535


def _schema() -> Any:
    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("name", DataType.VARCHAR, is_primary=True, max_length=64)
    fields.add_field("uid", DataType.VARCHAR, max_length=64)
    fields.add_field("config", DataType.VARCHAR, max_length=MAX_CONFIG_BYTES)
    fields.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector
    return fields


def _ready(client: MilvusClient, create: bool) -> bool:
    """Whether the FAQ collection exists (created if `create`), loaded for queries."""
    if not call("has_collection", client.has_collection, FAQ_COLLECTION):
        if not create:
            return False
        try:
            params = client.prepare_index_params()
            params.add_index(field_name="placeholder", index_type="FLAT", metric_type="L2")
            client.create_collection(FAQ_COLLECTION, schema=_schema(), index_params=params,
                                     consistency_level="Strong")
        except MilvusException as exc:  # another process may have created it meanwhile
            if not call("has_collection", client.has_collection, FAQ_COLLECTION):
                raise StorageError(f"cannot create {FAQ_COLLECTION}: {exc.message}") from exc
    # A restarted Milvus (every milvus-lite process) starts with collections released.
    call("load faq settings", client.load_collection, FAQ_COLLECTION)
    return True


def read_config(client: MilvusClient, name: str, uid: str) -> FaqConfig | None:
    """The FAQ settings of collection `name` (uid `uid`), or None if it is not an FAQ."""
    if not _ready(client, create=False):
        return None
    rows = call("faq settings query", client.query, FAQ_COLLECTION,
                filter=f"name == {quote(name)}", output_fields=["uid", "config"])
    if not rows or rows[0]["uid"] != uid:
        return None
    try:
        return config_from_json(json.loads(rows[0]["config"]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StorageError(f"the FAQ settings of '{name}' in {FAQ_COLLECTION} are unreadable: "
                           f"{exc}") from exc


def write_config(client: MilvusClient, name: str, uid: str, config: FaqConfig) -> None:
    """Store the FAQ settings of collection `name` (one upsert: all or nothing)."""
    _ready(client, create=True)
    row = {"name": name, "uid": uid, "config": config_to_json(config), "placeholder": [0.0, 0.0]}
    call("faq settings upsert", client.upsert, FAQ_COLLECTION, [row])

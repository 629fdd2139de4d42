"""Milvus backend: where the collections live (the catalog), and opening them by name."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pymilvus import MilvusClient, MilvusException

from storage.errors import (
    IndexNotFound,
    StorageError,
)
from storage.info import CollectionInfo
from storage.manifest import ModelInfo, check_model
from storage.milvus import lexical, migrate, passages, schema
from storage.milvus.check import check_milvus_collection
from storage.milvus.client import call
from storage.milvus.store import MilvusCollection
from storage.records import (
    Chunking,
    utc_now,
    validate_name,
)

if TYPE_CHECKING:
    from storage.info import CheckReport

logger = logging.getLogger(__name__)

MAX_COLLECTIONS = 16_384
LITE_CONNECT_SECONDS = 60.0
# pymilvus pings an idle channel every 10 s; milvus-lite's gRPC server answers a few of those
# with GOAWAY "too many pings" and the shared connection then fails ("Fail connecting to server").
# Idle channels stay quiet; a call on a dead one still reconnects.
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": 0}
CATALOG_FIELDS = ["name", "uid", "collection", "model", "index_type", "created_at", "updated_at",
                  "generation", "doc_count", "fields"]


class MilvusBackend:
    """Collections in one Milvus database (a milvus-lite `.db` path or a server URI)."""

    kind: Literal["milvus"] = "milvus"
    stores_passages = True  # in a passages collection beside the documents (storage.milvus.passages)

    def __init__(self, uri: str, *, data_dir: Path, token: str | None = None,
                 index: str = "flat") -> None:
        if index not in schema.INDEX_TYPES:
            raise StorageError(f"unknown milvus index '{index}': use one of "
                               f"{', '.join(schema.INDEX_TYPES)}")
        self.uri, self.data_dir, self.index = uri, Path(data_dir), index
        if "://" not in uri:  # a milvus-lite database folder, created on first use
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            # milvus-lite starts (or joins) a local server for the .db: give a busy machine time;
            # an unreachable remote server still fails at pymilvus's own default.
            self.client = MilvusClient(uri=uri, token=token or "",
                                       timeout=LITE_CONNECT_SECONDS if "://" not in uri else None,
                                       grpc_options=GRPC_OPTIONS)
        except MilvusException as exc:
            raise StorageError(f"cannot connect to {self.describe()}: {exc.message}") from exc
        self._ensure_catalog()

    def _ensure_catalog(self) -> None:
        if not call("has_collection", self.client.has_collection, schema.CATALOG):
            try:
                self._create_collection(schema.CATALOG, schema.catalog_schema(),
                                        schema.placeholder_index(self.client))
            except MilvusException as exc:  # another process may have created it meanwhile
                if not call("has_collection", self.client.has_collection, schema.CATALOG):
                    raise StorageError(f"cannot create the milvus catalog: {exc.message}") from exc
        # Loaded state does not outlive a Milvus restart (milvus-lite restarts with every
        # process that opens a .db), and a query on a released collection fails.
        call("load catalog", self.client.load_collection, schema.CATALOG)

    def _create_collection(self, name: str, fields: Any, index: Any,
                           properties: dict[str, str] | None = None) -> None:
        """Create, index and load a collection (raises MilvusException)."""
        self.client.create_collection(name, schema=fields, consistency_level="Strong",
                                      **({"properties": properties} if properties else {}))
        # sync=False: pymilvus would otherwise poll the index state with a fixed 0.5 s sleep;
        # an empty collection has nothing to build, and Milvus searches unindexed data exactly.
        self.client.create_index(name, index, sync=False)
        self.client.load_collection(name)

    def describe(self) -> str:
        """Where the collections are, for messages (credentials in the URI left out)."""
        return f"milvus at {self.uri.rsplit('@', 1)[-1] if '://' in self.uri else self.uri}"

    def row(self, name: str) -> schema.CatalogRow | None:
        rows = call("catalog query", self.client.query, schema.CATALOG,
                     filter=f"name == {schema.quote(name)}", output_fields=CATALOG_FIELDS)
        return schema.CatalogRow.from_row(rows[0]) if rows else None

    def write_row(self, row: schema.CatalogRow) -> None:
        call("catalog upsert", self.client.upsert, schema.CATALOG, [row.to_row()])

    def names(self) -> list[str]:
        rows = call("catalog query", self.client.query, schema.CATALOG, filter='name != ""',
                     output_fields=["name"], limit=MAX_COLLECTIONS)
        return sorted(str(row["name"]) for row in rows)

    def info(self, name: str) -> CollectionInfo:
        row = self._existing_row(name)
        described = call("describe", self.client.describe_collection, row.collection)
        chunking = passages.chunking_of(described)
        stored = passages.passages_of(described) if chunking is not None else None
        return CollectionInfo(name=row.name, model=row.model, created_at=row.created_at,
                              count=row.count, generation=row.generation, chunking=chunking,
                              passages=None if stored is None else passages.count(self.client, stored))

    def open(self, name: str) -> MilvusCollection:
        return MilvusCollection(self, self._existing_row(name))

    def check(self, name: str) -> CheckReport:
        """Verify a collection against its catalog row (see storage.milvus.check)."""
        return check_milvus_collection(self.client, self.row, validate_name(name), self.describe())

    def open_or_create(self, name: str, model: ModelInfo,
                       chunking: Chunking | None = None) -> MilvusCollection:
        """Open `name`, creating it for `model` (and `chunking`) if missing.

        An existing collection keeps its own chunking; a different model is ManifestMismatch.
        """
        row = self.row(validate_name(name)) or self._create(name, model, chunking)
        check_model(name, row.model, model.name, model.dimension)
        return MilvusCollection(self, row)

    def _existing_row(self, name: str) -> schema.CatalogRow:
        row = self.row(validate_name(name))
        if row is None:
            raise IndexNotFound(f"collection '{name}' does not exist in {self.describe()}")
        return row

    def _create(self, name: str, model: ModelInfo, chunking: Chunking | None) -> schema.CatalogRow:
        """Create the Milvus collection(s), then the catalog row (the row makes it visible)."""
        target = schema.milvus_name(name)
        stored = passages.passages_name(target)
        if not self._left_over_fits(target, model, chunking):
            # Left by a create that crashed before its catalog row, for another layout.
            for leftover in (target, stored):
                if self._has(leftover):
                    call("drop_collection", self.client.drop_collection, leftover)
        if chunking is not None and not self._has(stored):
            call("create_collection", self._create_collection, stored,
                  passages.passages_schema(model.dimension), schema.data_index(self.client, self.index))
        if not self._has(target):
            if chunking is None:
                call("create_collection", self._create_collection, target,
                      schema.data_schema(model.dimension), schema.data_index(self.client, self.index))
            else:
                call("create_collection", self._create_collection, target, passages.documents_schema(),
                      passages.documents_index(self.client), passages.properties(chunking, target))
        created = utc_now()
        row = schema.CatalogRow(name=name, uid=uuid.uuid4().hex, collection=target, model=model,
                         index_type=self.index, created_at=created, updated_at=created,
                         generation=0, count=0, fields=())
        raced = self.row(name)  # another process finished creating it meanwhile: use theirs
        if raced is not None:
            return raced
        self.write_row(row)
        logger.info("created milvus collection %s for %s (%s)", target, name, self.index)
        return row

    def _left_over_fits(self, target: str, model: ModelInfo, chunking: Chunking | None) -> bool:
        """Whether Milvus collections left at `target` (if any) have the layout wanted."""
        stored = passages.passages_name(target)
        if self._has(target):
            described = call("describe", self.client.describe_collection, target)
            if passages.chunking_of(described) != chunking:
                return False
            if chunking is None:
                return self._vectors_fit(described, model)
        if not self._has(stored):
            return True
        return chunking is not None and self._vectors_fit(
            call("describe", self.client.describe_collection, stored), model)

    def _has(self, collection: str) -> bool:
        return bool(call("has_collection", self.client.has_collection, collection))

    @staticmethod
    def _vectors_fit(described: dict[str, Any], model: ModelInfo) -> bool:
        dims = [f.get("params", {}).get("dim") for f in described["fields"] if f["name"] == "vector"]
        return dims == [model.dimension] and lexical.has_lexical(described)

    def upgrade(self, name: str) -> str:
        """Give a collection written before the BM25 field one (see storage.milvus.migrate)."""
        row = self._existing_row(name)
        described = call("describe", self.client.describe_collection, row.collection)
        if lexical.has_lexical(described) or passages.chunking_of(described) is not None:
            return f"collection '{name}' is up to date"
        copied = migrate.add_lexical(self.client, row, self._create_collection,
                                     schema.data_index(self.client, row.index_type), self.write_row)
        return f"collection '{name}': {copied} documents copied into a collection with lexical search"

    def close(self) -> None:
        self.client.close()


if TYPE_CHECKING:  # mypy proves the classes implement the interface the callers use
    from storage.backend import Backend, CollectionHandle

    def _implements(backend: MilvusBackend, collection: MilvusCollection
                    ) -> tuple[Backend, CollectionHandle]:
        return backend, collection

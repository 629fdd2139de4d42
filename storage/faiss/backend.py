"""The FAISS + SQLite backend: collections as folders under one data dir."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from storage.backend import StorageKind
from storage.faiss.check import check_collection
from storage.faiss.collection import Collection, read_info
from storage.info import CheckReport, CollectionInfo
from storage.manifest import ModelInfo
from storage.records import Chunking, list_collections, validate_name


class FaissBackend:
    """Collections as folders (FAISS index + SQLite + manifest) under one data dir."""

    kind: StorageKind = "faiss"
    stores_passages = True

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def describe(self) -> str:
        return f"faiss+sqlite in {self.data_dir}"

    def names(self) -> list[str]:
        return list_collections(self.data_dir)

    def info(self, name: str) -> CollectionInfo:
        return read_info(self.data_dir, validate_name(name))

    def open(self, name: str) -> Collection:
        return Collection.open(self.data_dir, validate_name(name))

    def open_or_create(self, name: str, model: ModelInfo,
                       chunking: Chunking | None = None) -> Collection:
        return Collection.open_or_create(self.data_dir, name, model, chunking=chunking)

    def check(self, name: str) -> CheckReport:
        """Verify a collection's SQLite, index file and manifest (see storage.faiss.check)."""
        return check_collection(self.data_dir, validate_name(name))

    def upgrade(self, name: str) -> str:
        """Opening a collection brings it up to date (a missing lexical index is built then)."""
        self.open(name).close()
        return f"collection '{name}' is up to date"

    def close(self) -> None:
        """Nothing is shared between the collections of a data dir."""


if TYPE_CHECKING:  # mypy proves the classes implement the interface the callers use
    from storage.backend import Backend, CollectionHandle

    def _implements(backend: FaissBackend, collection: Collection
                    ) -> tuple[Backend, CollectionHandle]:
        return backend, collection

"""Storage backends: the collection interface both FAISS + SQLite and Milvus implement.

`open_backend("faiss", data_dir=...)` keeps collections as folders under the data dir
(storage.collection); `open_backend("milvus", data_dir=..., milvus_uri=...)` keeps them
in Milvus (storage.milvus_store, which needs the `milvus` extra). Callers work through
`Backend` and `CollectionHandle`, so the indexer and the API do not care which it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from storage.check import CheckReport, check_collection
from storage.collection import Collection, CollectionInfo, read_info
from storage.errors import StorageError
from storage.index_types import SearchParams
from storage.manifest import Manifest, ModelInfo
from storage.metadata import Filter, StoredDocument
from storage.records import (
    Chunking,
    CommitStats,
    DocumentInput,
    Hit,
    list_collections,
    validate_name,
)

StorageKind = Literal["faiss", "milvus"]
STORAGE_KINDS: tuple[StorageKind, ...] = ("faiss", "milvus")
MILVUS_LITE_FILE = "milvus.db"


class CollectionWriting(Protocol):
    """What the holder of a collection's write lock may do."""

    def commit(self, upserts: Sequence[DocumentInput] = (), deletes: Sequence[str] = ()
               ) -> CommitStats: ...


class CollectionHandle(Protocol):
    """An open collection, whatever stores it: what the indexer and the API use."""

    @property
    def name(self) -> str: ...
    @property
    def model(self) -> ModelInfo: ...
    @property
    def count(self) -> int: ...
    @property
    def generation(self) -> int: ...
    unavailable: str | None  # why every request is refused (damaged storage); None when serving
    chunking: Chunking | None  # how documents are split into passages; None: one vector each
    @property
    def passage_count(self) -> int | None: ...
    rebuilds: int  # damaged index files rebuilt from the stored vectors since this handle opened
    def fields(self) -> list[str]: ...
    def manifest(self) -> Manifest: ...
    def search(self, vectors: np.ndarray, k: int, filter_: Filter | None = None,
               params: SearchParams | None = None) -> list[list[Hit]]: ...
    def get(self, doc_id: str) -> StoredDocument: ...
    def needs_vectors(self, docs: Sequence[tuple[str, str]]) -> list[bool]: ...
    def writer(self, timeout: float = 0.0) -> AbstractContextManager[CollectionWriting]: ...
    def refresh(self) -> bool: ...
    def replaced_on_disk(self) -> bool: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """Where collections live: list, describe, open and create them by name."""

    @property
    def kind(self) -> StorageKind: ...
    @property
    def stores_passages(self) -> bool: ...  # whether collections may be chunked
    def describe(self) -> str: ...
    def names(self) -> list[str]: ...
    def info(self, name: str) -> CollectionInfo: ...
    def open(self, name: str) -> CollectionHandle: ...
    def open_or_create(self, name: str, model: ModelInfo,
                       chunking: Chunking | None = None) -> CollectionHandle: ...
    def check(self, name: str) -> CheckReport: ...
    def close(self) -> None: ...


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
        """Verify a collection's SQLite, index file and manifest (see storage.check)."""
        return check_collection(self.data_dir, validate_name(name))

    def close(self) -> None:
        """Nothing is shared between the collections of a data dir."""


def default_milvus_uri(data_dir: Path) -> str:
    """A milvus-lite database inside the data dir, used when no URI is configured."""
    return str(Path(data_dir) / MILVUS_LITE_FILE)


def open_backend(kind: str, *, data_dir: Path, milvus_uri: str | None = None,
                 milvus_token: str | None = None, milvus_index: str = "flat") -> Backend:
    """The storage backend named by `kind` (SEMSEARCH_STORAGE).

    Args:
        kind: "faiss" (FAISS + SQLite folders) or "milvus".
        data_dir: the data dir; for milvus without a URI, `<data_dir>/milvus.db` (milvus-lite).
        milvus_uri: a milvus-lite `.db` path or a server URL such as http://host:19530.
        milvus_token: "user:password" or an API token for a Milvus server with auth.
        milvus_index: vector index of new Milvus collections: "flat" (exact) or "hnsw".

    Returns:
        The backend; a Milvus one is connected.

    Raises:
        StorageError: unknown kind, the milvus extra is not installed, or Milvus is unreachable.
    """
    if kind == "faiss":
        return FaissBackend(data_dir)
    if kind == "milvus":
        try:
            from storage.milvus_store import MilvusBackend
        except ImportError as exc:  # pymilvus or milvus-lite missing
            raise StorageError(
                f"the milvus storage backend needs pymilvus and milvus-lite ({exc}); "
                "install them with: pip install 'semsearch[milvus]'") from exc
        return MilvusBackend(milvus_uri or default_milvus_uri(data_dir), data_dir=data_dir,
                             token=milvus_token, index=milvus_index)
    raise StorageError(f"unknown storage backend '{kind}': use one of {', '.join(STORAGE_KINDS)}")


if TYPE_CHECKING:  # mypy proves both backends' classes implement the interface the callers use
    from storage.milvus_store import MilvusBackend, MilvusCollection

    def _implements(backend: FaissBackend, collection: Collection
                    ) -> tuple[Backend, CollectionHandle]:
        return backend, collection

    def _milvus_implements(backend: MilvusBackend, collection: MilvusCollection
                           ) -> tuple[Backend, CollectionHandle]:
        return backend, collection

"""Storage backends: the collection interface both FAISS + SQLite and Milvus implement.

`storage.factory.open_backend` opens the one named in the settings: collections as folders
under the data dir (storage.faiss) or in Milvus (storage.milvus, which needs the `milvus`
extra). Callers work through `Backend` and `CollectionHandle`, so the indexer and the API do
not care which it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

import numpy as np

from storage.faq_store import FaqConfig
from storage.filters import Filter
from storage.index_types import SearchParams
from storage.info import CheckReport, CollectionInfo, StoredDocument
from storage.manifest import Manifest, ModelInfo
from storage.records import Chunking, CommitStats, DocumentInput, Hit

StorageKind = Literal["faiss", "milvus"]
STORAGE_KINDS: tuple[StorageKind, ...] = ("faiss", "milvus")


class CollectionWriting(Protocol):
    """What the holder of a collection's write lock may do."""

    def commit(self, upserts: Sequence[DocumentInput] = (), deletes: Sequence[str] = ()
               ) -> CommitStats: ...
    def set_index(self, kind: str | None, params: dict[str, str]) -> CommitStats:
        """Commit a new index type / parameters; InvalidIndexSpec where the backend has none."""
        ...


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
    def index_info(self) -> dict[str, Any]:
        """The vector index in use and the parameters every reader searches with."""
        ...
    # -- searching (storage.fusion combines the two channels into hybrid search) --
    def search(self, vectors: np.ndarray, k: int, filter_: Filter | None = None,
               params: SearchParams | None = None) -> list[list[Hit]]:
        """Dense: top-k per query vector by cosine (`score` = cosine)."""
        ...
    def lexical_search(self, texts: Sequence[str], k: int,
                       filter_: Filter | None = None) -> list[list[Hit]]:
        """Lexical: top-k per query text by BM25 over storage.tokens' terms (`score` = BM25)."""
        ...
    def lexical_coverage(self, texts: Sequence[str]) -> list[float]:
        """Per query text, the share of its distinct terms that occur in the collection."""
        ...
    # -- documents -------------------------------------------------------------
    def get(self, doc_id: str) -> StoredDocument: ...
    def doc_ids(self) -> set[str]:
        """Every document id (meant for small collections, such as an FAQ's)."""
        ...
    def needs_vectors(self, docs: Sequence[tuple[str, str]]) -> list[bool]: ...
    # -- FAQ settings (storage.faq_store) ----------------------------------------
    def faq_config(self) -> FaqConfig | None:
        """The collection's FAQ settings, or None if it is not an FAQ."""
        ...
    def set_faq_config(self, config: FaqConfig) -> None:
        """Store the FAQ settings (without a new generation of the documents)."""
        ...
    # -- writing and lifecycle ---------------------------------------------------
    def writer(self, timeout: float = 0.0) -> AbstractContextManager[CollectionWriting]: ...
    def refresh(self) -> bool: ...
    def replaced_on_disk(self) -> bool: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """Where collections live: list, describe, open, create and check them by name."""

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
    def upgrade(self, name: str) -> str:
        """Bring a collection written by an older semsearch up to the current layout; says what
        was done."""
        ...
    def close(self) -> None: ...

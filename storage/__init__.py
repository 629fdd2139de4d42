"""Storage: collections of vectors (FAISS) and documents (SQLite), committed atomically."""

from storage.backend import Backend, CollectionHandle
from storage.errors import (
    CollectionLocked,
    CollectionUnavailable,
    DocumentNotFound,
    IndexNotFound,
    InvalidChunking,
    InvalidCollectionName,
    InvalidFilter,
    InvalidMetadata,
    ManifestMismatch,
    SemsearchError,
    StorageError,
    StorageFull,
    StorageIOError,
    UnknownFilterField,
)
from storage.factory import open_backend
from storage.faiss.backend import FaissBackend
from storage.faiss.check import check_collection
from storage.faiss.collection import Collection, CollectionWriter, read_info
from storage.filters import Filter
from storage.info import CheckReport, CollectionInfo, StoredDocument
from storage.manifest import RENAMED_MODELS, Manifest, ModelInfo, check_model, read_manifest
from storage.records import (
    Chunking,
    CommitStats,
    DocumentInput,
    Hit,
    content_hash,
    list_collections,
    metadata_json,
    validate_name,
)

__all__ = [
    "Backend",
    "CheckReport",
    "Chunking",
    "Collection",
    "CollectionHandle",
    "CollectionInfo",
    "CollectionLocked",
    "CollectionUnavailable",
    "CollectionWriter",
    "CommitStats",
    "DocumentInput",
    "DocumentNotFound",
    "FaissBackend",
    "Filter",
    "Hit",
    "IndexNotFound",
    "InvalidChunking",
    "InvalidCollectionName",
    "InvalidFilter",
    "InvalidMetadata",
    "Manifest",
    "ManifestMismatch",
    "ModelInfo",
    "SemsearchError",
    "StorageError",
    "StorageFull",
    "StorageIOError",
    "StoredDocument",
    "UnknownFilterField",
    "check_collection",
    "check_model",
    "RENAMED_MODELS",
    "content_hash",
    "list_collections",
    "metadata_json",
    "open_backend",
    "read_info",
    "read_manifest",
    "validate_name",
]

"""Storage: collections of vectors (FAISS) and documents (SQLite), committed atomically."""

from storage.collection import (
    Collection,
    CollectionWriter,
    CommitStats,
    DocumentInput,
    Hit,
    content_hash,
    list_collections,
    validate_name,
)
from storage.errors import (
    CollectionLocked,
    DocumentNotFound,
    IndexNotFound,
    InvalidCollectionName,
    InvalidFilter,
    ManifestMismatch,
    SemsearchError,
    StorageError,
    UnknownFilterField,
)
from storage.manifest import Manifest, ModelInfo, check_model, read_manifest
from storage.metadata import Filter, StoredDocument

__all__ = [
    "Collection", "CollectionLocked", "CollectionWriter", "CommitStats", "DocumentInput",
    "DocumentNotFound", "Filter", "Hit", "IndexNotFound", "InvalidCollectionName",
    "InvalidFilter", "Manifest", "ManifestMismatch", "ModelInfo", "SemsearchError",
    "StorageError", "StoredDocument", "UnknownFilterField", "check_model", "content_hash",
    "list_collections", "read_manifest", "validate_name",
]

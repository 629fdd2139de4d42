"""Domain errors shared by every layer; each carries a stable code and a suggested status."""

from __future__ import annotations


class SemsearchError(Exception):
    """Base of every error a user can cause; `code` is stable, `status` an HTTP-like hint."""

    code = "semsearch_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StorageError(SemsearchError):
    """A collection on disk is unusable (corrupt or inconsistent files)."""

    code = "storage_error"
    status = 500


class InvalidCollectionName(SemsearchError):
    code = "invalid_collection_name"
    status = 400


class IndexNotFound(SemsearchError):
    """The named collection does not exist in the data dir."""

    code = "collection_not_found"
    status = 404


class DocumentNotFound(SemsearchError):
    code = "document_not_found"
    status = 404


class ManifestMismatch(SemsearchError):
    """A collection was built with another model (or dimension) than the one asked for."""

    code = "model_mismatch"
    status = 409


class UnknownFilterField(SemsearchError):
    code = "unknown_filter_field"
    status = 400


class InvalidFilter(SemsearchError):
    code = "invalid_filter"
    status = 400


class CollectionLocked(SemsearchError):
    """Another process holds the collection's write lock."""

    code = "collection_locked"
    status = 409


class InvalidChunking(SemsearchError):
    """Passage window / overlap out of range, or not what the collection was built with."""

    code = "invalid_chunking"
    status = 422


class InvalidMetadata(SemsearchError):
    """Metadata that cannot be stored as JSON (NaN, too deep, not a JSON type)."""

    code = "invalid_metadata"
    status = 400


class LimitExceeded(SemsearchError):
    """A request or document over a configured limit (its message names the setting)."""

    code = "limit_exceeded"
    status = 400


class CollectionUnavailable(StorageError):
    """A collection whose database is damaged or missing: not served until it is restored."""

    code = "collection_unavailable"
    status = 503


class StorageFull(StorageError):
    """A write failed for lack of disk space; what was committed before stays readable."""

    code = "storage_full"
    status = 507


class StorageIOError(StorageError):
    """A write failed with an I/O error (not disk space); what was committed before stays readable."""

    code = "storage_io_error"
    status = 503

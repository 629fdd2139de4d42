"""Document writes over HTTP (upsert, delete) and collection descriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from indexer.chunking import ChunkRequest, check_chunking
from indexer.encoding import alias_name
from indexer.models import SourceDocument
from indexer.pipeline import IndexOptions, delete_documents, index_documents
from search_api.config import ApiSettings
from search_api.errors import LimitExceeded
from search_api.services.model_access import allowed_models, check_allowed
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.text_checks import check_text
from storage import (
    CollectionHandle,
    DocumentNotFound,
    IndexNotFound,
    check_model,
)
from storage.limits import check_document

# API writers wait a little for a CLI writer instead of failing at once.
LOCK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, kw_only=True)
class UpsertOutcome:
    collection: CollectionHandle
    added: int
    updated: int
    unchanged: int
    truncated: int


class DocumentService:
    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 encoders: EncoderRegistry) -> None:
        self._settings = settings
        self._collections = collections
        self._encoders = encoders

    def upsert(self, name: str, documents: list[dict[str, Any]], model: str | None,
               chunking: ChunkRequest | None = None) -> UpsertOutcome:
        """Add or replace documents by id in one commit, creating the collection if needed.

        Args:
            name: the collection.
            documents: dicts with id, text and metadata.
            model: the model of a new collection (an existing one's must match).
            chunking: passage options (none given: the collection's own, or the default
                for a new one); options that differ from an existing collection's are an error.
        """
        chunking = chunking or ChunkRequest()
        self._check_documents(documents)
        collection = self._collection_for_write(name, model, chunking)
        encoder = self._encoders.get(collection.model.name)
        rows = [SourceDocument(doc_id=d["id"], text=d["text"], metadata=d["metadata"], line=i)
                for i, d in enumerate(documents)]
        options = IndexOptions(batch_size=64, commit_every=len(rows) + 1,
                               lock_timeout=LOCK_TIMEOUT_SECONDS,
                               limits=self._settings.input_limits())
        stats = index_documents(collection, encoder, rows, options)
        return UpsertOutcome(collection=collection, added=stats.added, updated=stats.updated,
                             unchanged=stats.unchanged, truncated=stats.truncated)

    def delete(self, name: str, doc_id: str) -> CollectionHandle:
        collection = self._collections.get(name)
        stats = delete_documents(collection, [doc_id], lock_timeout=LOCK_TIMEOUT_SECONDS)
        if stats.missing:
            raise DocumentNotFound(f"document '{doc_id}' not found in collection '{name}'")
        return collection

    def _collection_for_write(self, name: str, model: str | None,
                              chunking: ChunkRequest) -> CollectionHandle:
        try:
            collection = self._collections.get(name)
        except IndexNotFound:
            return self._collections.get_or_create(name, self._encoders.get(self._allowed(model)),
                                                   chunking)
        check_chunking(name, collection.chunking, chunking, collection.model.max_length)
        if model is not None:  # compared by name: a client never makes the server load a model
            stored = collection.model
            check_model(name, stored, alias_name(model), stored.dimension)
        return collection

    def _allowed(self, model: str | None) -> str:
        """Models a client may create a collection with: built-ins, the default, ones in use."""
        return check_allowed(model or self._settings.model,
                             allowed_models(self._settings, self._collections))

    def _check_documents(self, documents: list[dict[str, Any]]) -> None:
        limit = self._settings.max_documents
        if len(documents) > limit:
            raise LimitExceeded(f"{len(documents)} documents in one request; the limit is "
                                f"{limit} (SEMSEARCH_MAX_DOCUMENTS)")
        limits = self._settings.input_limits()
        for position, doc in enumerate(documents):
            where = f"documents[{position}] (id '{doc['id'][:100]}')"
            check_text(f"{where}.text", doc["text"], self._settings)
            check_document(where, doc["text"], doc["metadata"], limits)

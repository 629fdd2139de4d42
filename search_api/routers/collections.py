"""Collection routes: list, describe, upsert documents, get and delete a document."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor

from indexer.chunking import ChunkRequest
from search_api.deps import CollectionsDep, DocumentsDep, ServicesDep
from search_api.schemas.core import (
    ChunkingOut,
    CollectionInfo,
    CollectionList,
    CollectionSummary,
    DeleteResponse,
    DocumentOut,
    ModelOut,
    UpsertRequest,
    UpsertResponse,
)


class DocIdConvertor(Convertor[str]):
    """The rest of the path, line breaks included: Starlette's `path` (`.*`) stops at a newline,
    so an id stored with one (%0A in the URL) could never be read or deleted."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Registered before the routes below compile their paths (Starlette keeps one global table).
register_url_convertor("docid", DocIdConvertor())
router = APIRouter(prefix="/collections", tags=["collections"])


@router.get("", response_model=CollectionList)
def list_all(service: CollectionsDep) -> CollectionList:
    """Every collection in the data dir with its model and document count."""
    return CollectionList(collections=[
        CollectionSummary(name=item.name, kind=item.kind,
                          model=item.info.model.name if item.info else None,
                          count=item.info.count if item.info else None,
                          passages=item.info.passages if item.info else None, error=item.error)
        for item in service.list_all()
    ])


@router.get("/{name}", response_model=CollectionInfo)
def describe(name: str, service: CollectionsDep) -> CollectionInfo:
    """Model, size, generation and metadata fields of one collection."""
    manifest, fields = service.describe(name)
    return CollectionInfo(name=name, model=ModelOut(**manifest.model.__dict__),
                          count=manifest.count, passages=manifest.passages,
                          chunking=ChunkingOut(**manifest.chunking) if manifest.chunking else None,
                          generation=manifest.generation,
                          created_at=manifest.created_at, updated_at=manifest.updated_at,
                          fields=fields)


@router.post("/{name}/documents", response_model=UpsertResponse)
def upsert(name: str, body: UpsertRequest, documents: DocumentsDep) -> UpsertResponse:
    """Add or replace documents by id (one commit); creates the collection if missing."""
    chunking = ChunkRequest(tokens=body.chunk_tokens, overlap=body.chunk_overlap, off=body.no_chunk)
    outcome = documents.upsert(name, [d.model_dump() for d in body.documents], body.model, chunking)
    target = outcome.collection
    return UpsertResponse(collection=name, model=target.model.name, added=outcome.added,
                          updated=outcome.updated, unchanged=outcome.unchanged,
                          truncated=outcome.truncated, count=target.count,
                          generation=target.generation)


@router.get("/{name}/documents/{doc_id:docid}", response_model=DocumentOut)
def get_document(name: str, doc_id: str, services: ServicesDep) -> DocumentOut:
    """One stored document by id."""
    doc = services.collections.get(name).get(doc_id)
    return DocumentOut(id=doc.doc_id, text=doc.text, metadata=doc.metadata)


@router.delete("/{name}/documents/{doc_id:docid}", response_model=DeleteResponse)
def delete(name: str, doc_id: str, documents: DocumentsDep) -> DeleteResponse:
    """Delete one document by id (404 if it does not exist)."""
    collection = documents.delete(name, doc_id)
    return DeleteResponse(collection=name, deleted=doc_id, count=collection.count,
                          generation=collection.generation)

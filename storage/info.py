"""What every backend reports about a collection: its description, a stored document, a check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.manifest import ModelInfo
from storage.records import Chunking


@dataclass(frozen=True, kw_only=True)
class CollectionInfo:
    """What SQLite records of a collection; cheap to read (the index is not loaded)."""

    name: str
    model: ModelInfo
    created_at: str
    count: int  # documents
    generation: int
    chunking: Chunking | None = None  # None: one vector per document
    passages: int | None = None  # passages stored, in a chunked collection


@dataclass(frozen=True, kw_only=True)
class StoredDocument:
    """One stored document; `rowid` is the backend's own number for it."""

    rowid: int
    doc_id: str
    text: str
    metadata: dict[str, Any]


@dataclass(kw_only=True)
class CheckReport:
    """Outcome of `check_collection`: errors make it fail, warnings are informational."""

    name: str
    generation: int = 0
    count: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    retry: bool = False  # what we saw was overtaken by a writer; look again
    swept: list[str] = field(default_factory=list)  # temp files of interrupted writes, removed

    @property
    def ok(self) -> bool:
        return not self.errors

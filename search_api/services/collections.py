"""Collection descriptions for the listing and info routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from search_api.services.registry import CollectionRegistry
from storage import CollectionInfo, Manifest, SemsearchError, StorageError
from storage.faq_store import read_faq_config


@dataclass(frozen=True, kw_only=True)
class Listed:
    name: str
    kind: Literal["documents", "faq"]
    info: CollectionInfo | None
    error: str | None


class CollectionService:
    def __init__(self, collections: CollectionRegistry) -> None:
        self._collections = collections

    def list_all(self) -> list[Listed]:
        """Every collection in the data dir, read fresh from SQLite; a broken one says why."""
        listed = []
        for name in self._collections.names():
            kind = self._kind(name)
            try:
                listed.append(Listed(name=name, kind=kind, info=self._collections.info(name),
                                     error=None))
            except SemsearchError as exc:
                listed.append(Listed(name=name, kind=kind, info=None, error=exc.message))
        return listed

    def _kind(self, name: str) -> Literal["documents", "faq"]:
        """faq if `semsearch faq import` marked the collection (its FAQ config file)."""
        try:
            config = read_faq_config(self._collections.data_dir / name)
        except StorageError:
            return "faq"  # a damaged config still marks an FAQ; matching says what is wrong
        return "documents" if config is None else "faq"

    def describe(self, name: str) -> tuple[Manifest, list[str]]:
        """The manifest of the latest committed generation and the metadata fields."""
        collection = self._collections.get(name)
        collection.refresh()
        return collection.manifest(), collection.fields()

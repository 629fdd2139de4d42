"""Collection descriptions for the listing and info routes."""

from __future__ import annotations

from dataclasses import dataclass

from search_api.services.registry import CollectionRegistry
from storage import CollectionInfo, Manifest, SemsearchError


@dataclass(frozen=True, kw_only=True)
class Listed:
    name: str
    info: CollectionInfo | None
    error: str | None


class CollectionService:
    def __init__(self, collections: CollectionRegistry) -> None:
        self._collections = collections

    def list_all(self) -> list[Listed]:
        """Every collection in the data dir, read fresh from SQLite; a broken one says why."""
        listed = []
        for name in self._collections.names():
            try:
                listed.append(Listed(name=name, info=self._collections.info(name),
                                     error=None))
            except SemsearchError as exc:
                listed.append(Listed(name=name, info=None, error=exc.message))
        return listed

    def describe(self, name: str) -> tuple[Manifest, list[str]]:
        """The manifest of the latest committed generation and the metadata fields."""
        collection = self._collections.get(name)
        collection.refresh()
        return collection.manifest(), collection.fields()

"""Fixtures for storage tests: real FAISS and SQLite in tmp_path, random unit vectors, no encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage import Collection, ModelInfo
from tests.storage.helpers import MODEL


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def open_handles() -> Iterator[list[Collection]]:
    """Collections opened by a test, closed at teardown."""
    handles: list[Collection] = []
    yield handles
    for handle in handles:
        handle.close()


@pytest.fixture
def new_collection(data_root: Path, open_handles: list[Collection]) -> Callable[..., Collection]:
    """Factory: `new_collection(name="c")` creates (or opens) a collection in tmp_path."""

    def factory(name: str = "c", model: ModelInfo = MODEL) -> Collection:
        collection = Collection.create(data_root, name, model)
        open_handles.append(collection)
        return collection

    return factory


@pytest.fixture
def reopen(data_root: Path, open_handles: list[Collection]) -> Callable[..., Collection]:
    """Factory: a fresh handle on an existing collection, as another process would open it."""

    def factory(name: str = "c") -> Collection:
        collection = Collection.open(data_root, name)
        open_handles.append(collection)
        return collection

    return factory


@pytest.fixture
def collection(new_collection: Callable[..., Collection]) -> Collection:
    """An empty collection named 'c' (dimension 8)."""
    return new_collection()

"""One Milvus request at a time, with Milvus's failures turned into our StorageError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pymilvus import MilvusException

from storage.errors import StorageError

T = TypeVar("T")


def call(what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one Milvus request; a Milvus failure becomes a StorageError saying what failed."""
    try:
        return func(*args, **kwargs)
    except MilvusException as exc:
        raise StorageError(f"milvus {what} failed: {exc.message}") from exc

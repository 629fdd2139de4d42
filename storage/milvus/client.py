"""One Milvus request at a time, with Milvus's failures turned into our StorageError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from pymilvus import MilvusException

from storage.errors import StorageError

T = TypeVar("T")
HITS_PER_REQUEST = 2_000  # x at most 65,535 bytes of text each: under gRPC's 256 MB answers


def call(what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one Milvus request; a Milvus failure becomes a StorageError saying what failed."""
    try:
        return func(*args, **kwargs)
    except MilvusException as exc:
        raise StorageError(f"milvus {what} failed: {exc.message}") from exc
    except grpc.RpcError as exc:  # some transport failures reach us unwrapped
        raise StorageError(f"milvus {what} failed: {exc}") from exc


def queries_per_request(limit: int) -> int:
    """Queries per search request: hits carry their texts, and a gRPC answer holds 256 MB."""
    return max(1, HITS_PER_REQUEST // max(1, limit))

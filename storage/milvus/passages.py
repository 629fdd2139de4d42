"""Milvus keeps one vector per document for now: what it says about passages, and its refusal."""

from __future__ import annotations

from storage.errors import InvalidChunking
from storage.records import Chunking


class WithoutPassages:
    """What a storage that keeps one vector per document says about passages (Milvus, for now)."""

    stores_passages = False
    chunking: Chunking | None = None
    passage_count: int | None = None


def refuse_chunking(chunking: Chunking | None) -> None:
    """InvalidChunking for a storage without passages asked to make a chunked collection."""
    if chunking is not None:
        raise InvalidChunking("this storage keeps one vector per document: index with "
                              "--no-chunk (passages need the faiss storage for now)")

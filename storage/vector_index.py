"""FaissIndex: an exact inner-product FAISS index whose ids are SQLite row ids."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from storage.errors import StorageError


class FaissIndex:
    """IndexIDMap2 over IndexFlatIP.

    Inner product equals cosine similarity only because every vector stored or
    searched here is L2-normalised by the encoder; callers must keep it so.
    """

    def __init__(self, index: Any) -> None:  # faiss.IndexIDMap2; faiss's stubs are incomplete
        self._index = index

    @classmethod
    def create(cls, dimension: int) -> FaissIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def load(cls, path: Path) -> FaissIndex:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise StorageError(f"cannot read FAISS index {path}: {exc}") from exc
        return cls(index)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._index.add_with_ids(_as_matrix(vectors), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def ids(self) -> np.ndarray:
        """Every id in the index (for integrity checks)."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product; ids of -1 mark empty slots.

        Args:
            queries: float32 [n, d], L2-normalised.
            k: hits per query.
            allowed_ids: if given, only these ids can be returned (metadata filter).

        Returns:
            (scores [n, k], ids [n, k]).
        """
        params = None
        if allowed_ids is not None:
            selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self._index.search(_as_matrix(queries), k, params=params)
        return scores, ids

    def save(self, path: Path) -> None:
        """Write to a temp file, fsync, then os.replace: readers never see a half file."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self._index, str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(vectors), -1)

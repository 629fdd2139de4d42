"""The one place that opens a storage backend from settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from storage.backend import STORAGE_KINDS, Backend
from storage.errors import StorageError
from storage.faiss.backend import FaissBackend

if TYPE_CHECKING:  # mypy matches MilvusBackend to Backend only with the handle class in view
    from storage.milvus.store import MilvusCollection  # noqa: F401

MILVUS_LITE_FILE = "milvus.db"


def default_milvus_uri(data_dir: Path) -> str:
    """A milvus-lite database inside the data dir, used when no URI is configured."""
    return str(Path(data_dir) / MILVUS_LITE_FILE)


def one_process_only(kind: str, milvus_uri: str | None) -> bool:
    """Whether this storage can be open in one process at a time: milvus-lite's `.db` file
    (pymilvus runs it for the process that opens it, under a lock), not a Milvus server."""
    return kind == "milvus" and (milvus_uri is None or milvus_uri.endswith(".db"))


def open_backend(kind: str, *, data_dir: Path, milvus_uri: str | None = None,
                 milvus_token: str | None = None, milvus_index: str = "flat") -> Backend:
    """The storage backend named by `kind` (SEMSEARCH_STORAGE).

    Args:
        kind: "faiss" (FAISS + SQLite folders) or "milvus".
        data_dir: the data dir; for milvus without a URI, `<data_dir>/milvus.db` (milvus-lite).
        milvus_uri: a milvus-lite `.db` path or a server URL such as http://host:19530.
        milvus_token: "user:password" or an API token for a Milvus server with auth.
        milvus_index: vector index of new Milvus collections: "flat" (exact) or "hnsw".

    Returns:
        The backend; a Milvus one is connected.

    Raises:
        StorageError: unknown kind, the milvus extra is not installed, or Milvus is unreachable.
    """
    if kind == "faiss":
        return FaissBackend(data_dir)
    if kind == "milvus":
        try:
            from storage.milvus.backend import MilvusBackend
        except ImportError as exc:  # pymilvus or milvus-lite missing
            raise StorageError(
                f"the milvus storage backend needs pymilvus and milvus-lite ({exc}); "
                "install them with: pip install 'semsearch[milvus]'") from exc
        return MilvusBackend(milvus_uri or default_milvus_uri(data_dir), data_dir=data_dir,
                             token=milvus_token, index=milvus_index)
    raise StorageError(f"unknown storage backend '{kind}': use one of {', '.join(STORAGE_KINDS)}")


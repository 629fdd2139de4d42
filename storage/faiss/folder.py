"""A collection's folder: its file names, how an empty one is laid out, what its database records."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from storage.errors import IndexNotFound
from storage.faiss.integrity import CHECKSUM_KEY, recorded_checksum, unavailable
from storage.faiss.metadata import MetadataStore, create_schema
from storage.faiss.passages import CHUNKING_KEY
from storage.faiss.vector_index import FaissIndex
from storage.index_types import IndexSpec
from storage.info import CollectionInfo
from storage.manifest import Manifest, ModelInfo, write_manifest
from storage.records import DB_FILE, MANIFEST_FILE, Chunking, utc_now, validate_name


def index_file(generation: int) -> str:
    """The name of generation `generation`'s index file."""
    return f"index-{generation}.faiss"


def build_empty(folder: Path, name: str, model: ModelInfo, index: IndexSpec,
                chunking: Chunking | None = None) -> None:
    """Write the files of an empty collection (generation 0) into a new folder.

    A `chunking` makes a collection of passages (storage.faiss.passages); None, one vector per document.
    """
    folder.mkdir()
    created_at = utc_now()
    checksum = FaissIndex.create(model.dimension).save(folder / index_file(0))
    meta = {"model": json.dumps(model.__dict__), "created_at": created_at, "generation": "0",
            "name": name, "index_spec": index.to_json(),
            CHECKSUM_KEY: recorded_checksum(0, checksum)}
    if chunking is not None:
        meta[CHUNKING_KEY] = chunking.to_json()
    create_schema(folder / DB_FILE, meta, chunked=chunking is not None)
    write_manifest(folder, Manifest(name=name, model=model, count=0, generation=0,
                                    created_at=created_at, updated_at=created_at,
                                    index_file=index_file(0), index_checksum=checksum,
                                    **chunking_fields(chunking, 0)))


def chunking_fields(chunking: Chunking | None, passages: int) -> dict[str, Any]:
    """The manifest's `chunking` and `passages` (both absent for one vector per document)."""
    if chunking is None:
        return {}
    return {"chunking": {"tokens": chunking.tokens, "overlap": chunking.overlap},
            "passages": passages}


def file_identity(path: Path) -> tuple[int, int]:
    """(device, inode): tells a file from one recreated at the same path."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def read_info(data_dir: Path, name: str) -> CollectionInfo:
    """Model, size and generation of a collection, straight from its database."""
    folder = Path(data_dir) / validate_name(name)
    if not (folder / DB_FILE).exists():
        if (folder / MANIFEST_FILE).exists():  # the folder of a collection that lost its database
            raise unavailable(name, folder, f"{DB_FILE} is missing")
        raise IndexNotFound(f"collection '{name}' does not exist in {data_dir}")
    try:
        store = MetadataStore(folder / DB_FILE)
        try:
            model_json = store.get_meta("model")
            if model_json is None:
                raise ValueError(f"no model recorded in {DB_FILE}")
            return CollectionInfo(name=name, model=ModelInfo(**json.loads(model_json)),
                                  created_at=store.get_meta("created_at") or "",
                                  count=store.count(), generation=store.generation(),
                                  chunking=Chunking.from_json(store.get_meta(CHUNKING_KEY)),
                                  passages=store.vector_count() if store.chunked else None)
        finally:
            store.close()
    except (sqlite3.Error, ValueError, TypeError) as exc:
        raise unavailable(name, folder, f"unreadable: {exc}") from exc

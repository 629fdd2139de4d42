"""Manifest: the model and layout a collection was built with, kept in manifest.json."""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storage.errors import ManifestMismatch, StorageError
from storage.fileops import OPS, write_atomically
from storage.records import MANIFEST_FILE

FORMAT_VERSION = 1
# Built-in models renamed since collections recorded them: old name -> current name. The model
# is the same, so a collection built under the old name keeps working under the new one.
RENAMED_MODELS = {"multilingual-e5-small-q4": "multilingual-e5-small"}


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a collection's vectors depend on: queries must be encoded the same way."""

    name: str
    dimension: int
    max_length: int
    normalized: bool = True
    # Encoder backend that built the vectors (torch, onnx-int8, ...): the default for later index
    # runs. Not checked at query time: every backend's vectors agree within tolerance. Empty in
    # collections made before backends existed.
    backend: str = ""

    def __post_init__(self) -> None:
        # Every reader (manifest, SQLite, Milvus) builds a ModelInfo: one place maps old names.
        object.__setattr__(self, "name", RENAMED_MODELS.get(self.name, self.name))


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A snapshot of a committed generation, written after each commit for humans and tools."""

    name: str
    model: ModelInfo
    count: int
    generation: int
    created_at: str
    updated_at: str
    metric: str = "inner_product"
    index_file: str = ""
    format_version: int = FORMAT_VERSION
    index: dict[str, Any] = field(default_factory=dict)  # type, spec and layout of the index
    index_checksum: str = ""  # of index_file, as committed with the generation ("" if none)
    # Passage window and overlap in tokens, and passages stored; absent in collections with one
    # vector per document (every collection made before passages existed).
    chunking: dict[str, int] | None = None
    passages: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.chunking is None:  # unchanged manifests for collections without passages
            del data["chunking"], data["passages"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            model = ModelInfo(**data["model"])
            # "checksum" covers the file's other fields: write_manifest adds it, read_manifest checks it.
            fields = {k: v for k, v in data.items() if k not in ("model", "checksum")}
            return cls(model=model, **fields)
        except (KeyError, TypeError) as exc:
            raise StorageError(f"manifest is malformed: {exc}") from exc


def check_model(collection: str, stored: ModelInfo, model_name: str, dimension: int) -> None:
    """Raise ManifestMismatch unless the encoder matches what built the collection.

    Args:
        collection: collection name, for the message.
        stored: the model recorded in the collection.
        model_name: name of the encoder about to be used.
        dimension: that encoder's output dimension.
    """
    model_name = RENAMED_MODELS.get(model_name, model_name)
    if stored.name != model_name or stored.dimension != dimension:
        raise ManifestMismatch(
            f"collection '{collection}' was built with model '{stored.name}' "
            f"({stored.dimension}-d); it cannot be used with '{model_name}' ({dimension}-d). "
            f"Use model '{stored.name}' or index into a new collection."
        )


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write manifest.json atomically (temp file + os.replace), with a checksum of its content."""
    data = manifest.to_dict()
    data["checksum"] = _content_checksum(data)
    text = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
    write_atomically(folder / MANIFEST_FILE, lambda tmp: OPS.write_bytes(tmp, text))


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of `folder`; None if there is none, StorageError if it is damaged."""
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StorageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise StorageError(f"{path} is not a JSON object")
    recorded = data.get("checksum")
    if recorded and recorded != _content_checksum(data):  # manifests before checksums have none
        raise StorageError(f"{path} does not match its checksum (damaged)")
    return Manifest.from_dict(data)


def _content_checksum(data: dict[str, Any]) -> str:
    content = {key: value for key, value in data.items() if key != "checksum"}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return f"crc32:{zlib.crc32(canonical):08x}"

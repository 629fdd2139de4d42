"""Manifest: the model and layout a collection was built with, kept in manifest.json."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storage.errors import ManifestMismatch, StorageError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            model = ModelInfo(**data["model"])
            fields = {k: v for k, v in data.items() if k != "model"}
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
    """Write manifest.json atomically (temp file + os.replace)."""
    tmp = folder / (MANIFEST_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest.to_dict(), fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST_FILE)


def read_manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StorageError(f"cannot read {path}: {exc}") from exc
    return Manifest.from_dict(data)

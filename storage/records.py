"""Plain records and checks shared by the storage modules: documents, stats, names, metadata."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from storage.errors import InvalidChunking, InvalidCollectionName, InvalidMetadata

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DB_FILE = "metadata.db"
MANIFEST_FILE = "manifest.json"
MAX_METADATA_DEPTH = 16
# Ids travel in URLs (GET/DELETE /collections/{name}/documents/{id}); percent-encoded, 512
# characters take at most 6 KB, within the 8 KB request line that servers and proxies accept.
MAX_ID_CHARS = 512


@dataclass(frozen=True, kw_only=True)
class Chunking:
    """How a collection splits documents into passages: a window and an overlap, in tokens."""

    tokens: int = 200
    overlap: int = 50

    def __post_init__(self) -> None:
        if not 8 <= self.tokens <= 100_000:
            raise InvalidChunking(f"chunk tokens must be between 8 and 100000, got {self.tokens}")
        if not 0 <= self.overlap <= self.tokens // 2:
            raise InvalidChunking(f"chunk overlap must be between 0 and half the window "
                                  f"({self.tokens // 2}), got {self.overlap}")

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens, "overlap": self.overlap}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Chunking | None:
        """The chunking recorded in a collection; None (absent) means one passage per document."""
        if not text:
            return None
        data = json.loads(text)
        return cls(tokens=int(data["tokens"]), overlap=int(data["overlap"]))


@dataclass(frozen=True, kw_only=True)
class PassageSpan:
    """Passage `index` of a document: its characters `text[start:end]`."""

    index: int
    start: int
    end: int


@dataclass(frozen=True, kw_only=True)
class PassageInput:
    """A passage to store with its vector (chunked collections)."""

    span: PassageSpan
    vector: np.ndarray


@dataclass(frozen=True, kw_only=True)
class DocumentInput:
    """A document to upsert; `vector` may be None when its text is already stored unchanged.

    In a chunked collection a new or changed text comes with `passages` (each with its
    vector) instead of `vector`.
    """

    doc_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None
    passages: tuple[PassageInput, ...] | None = None


@dataclass(kw_only=True)
class CommitStats:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    missing: list[str] = field(default_factory=list)
    generation: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True, kw_only=True)
class Hit:
    """One search result. `score` ranks hits in the mode searched: cosine similarity in dense mode,
    BM25 in lexical mode, the fused score in hybrid mode; the channel scores say where it came from."""

    doc_id: str
    score: float
    text: str
    metadata: dict[str, Any]
    dense_score: float | None = None  # cosine similarity, when the dense channel saw this document
    lexical_score: float | None = None  # BM25, when the lexical channel matched it
    passage: PassageSpan | None = None  # the best passage, in a chunked collection


T = TypeVar("T")


def utc_now() -> str:
    """Now, as stored in `created_at` / `updated_at`: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size` (requests have bounded parameter counts)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def id_problem(doc_id: str) -> str | None:
    """Why `doc_id` could not be addressed in a URL, or None if it can.

    Ids are stored exactly as given (no Unicode normalisation: NFC and NFD spellings are two
    ids). Any id can be addressed as one percent-encoded path segment, except `.` and `..`,
    which clients rewrite as dot segments, and ids too long for a request line.
    """
    if doc_id in (".", ".."):
        return f"id '{doc_id}' cannot be addressed in a URL (clients resolve it as a dot segment)"
    if len(doc_id) > MAX_ID_CHARS:
        return f"id has {len(doc_id)} characters; the limit is {MAX_ID_CHARS}"
    return None


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidCollectionName(
            f"invalid collection name '{name}': use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def list_collections(data_dir: Path) -> list[str]:
    """Collection folders in `data_dir`; one whose database is lost (a manifest, no database) too."""
    if not data_dir.is_dir():
        return []
    return sorted(
        p.name for p in data_dir.iterdir()
        if p.is_dir() and NAME_PATTERN.fullmatch(p.name)
        and ((p / DB_FILE).exists() or (p / MANIFEST_FILE).exists())
    )


def metadata_json(metadata: dict[str, Any]) -> str:
    """Canonical JSON of a metadata dict; InvalidMetadata if SQLite's JSON could not hold it.

    Rejects NaN/Infinity (not JSON), nesting deeper than MAX_METADATA_DEPTH, integers
    beyond 64 bits, and text that is not valid Unicode (lone surrogates).
    """
    _check_value(metadata, 0, "metadata")
    try:
        text = json.dumps(metadata, sort_keys=True, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidMetadata(f"metadata cannot be stored as JSON: {exc}") from exc
    return text


def _check_value(value: Any, depth: int, where: str) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidMetadata(f"{where} is nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata(f"{where} has a non-string key {key!r}")
            _check_value(item, depth + 1, f"{where}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _check_value(item, depth + 1, f"{where}[{position}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidMetadata(f"{where}: {value} is not a JSON number (NaN and infinity are not)")
    elif isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        raise InvalidMetadata(f"{where}: integer {value} does not fit in 64 bits")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidMetadata(
            f"{where}: a {type(value).__name__} is not a JSON value (use a string or number)")

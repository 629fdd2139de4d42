"""Rows of a corpus file as documents: the file spec, the id / text / metadata fields, the limits."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.models import SourceDocument
from storage import InvalidMetadata, metadata_json
from storage.errors import LimitExceeded, SemsearchError
from storage.limits import InputLimits, check_document
from storage.records import id_problem


class SourceError(SemsearchError):
    """A corpus file cannot be read; the message names the file, the line and what to fix."""

    code = "bad_input_file"
    status = 400


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """Where a corpus lives, which of its fields hold the id, the text and the metadata, and the
    limits every row must keep (SEMSEARCH_MAX_TEXT_CHARS and the metadata limits)."""

    path: Path
    format: str = "auto"
    id_field: str | None = None
    text_fields: tuple[str, ...] = ("text",)
    metadata_fields: tuple[str, ...] | None = None
    limits: InputLimits = dataclasses.field(default_factory=InputLimits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        # A bare string would be iterated character by character as field names.
        if isinstance(self.text_fields, str) or not self.text_fields:
            raise SourceError(
                f"{self.path}: text_fields must be a non-empty tuple of field names, "
                f"got {self.text_fields!r}"
            )


@dataclass(frozen=True)
class Location:
    """A line (or Parquet row) of a file, used to prefix error messages."""

    path: Path
    number: int
    unit: str = "line"

    def error(self, message: str) -> SourceError:
        return SourceError(f"{self.path} {self.unit} {self.number}: {message}")


def id_field_name(row: Iterable[str] | Mapping[str, Any], spec: SourceSpec) -> str:
    """The id field of a row or header: the chosen one, else 'id', else '_id'."""
    if spec.id_field is not None:
        return spec.id_field
    keys = set(row)
    return "id" if "id" in keys or "_id" not in keys else "_id"


def to_document(row: Mapping[str, Any], where: Location, spec: SourceSpec) -> SourceDocument:
    """One row as a document, or SourceError naming the line and what to fix."""
    id_field = id_field_name(row, spec)
    doc_id = _doc_id(row, id_field, where)
    text = _join_text(row, spec.text_fields, where)
    if spec.metadata_fields is None:
        skip = {id_field, *spec.text_fields}
        metadata = {key: value for key, value in row.items() if key not in skip}
    else:
        metadata = {key: row[key] for key in spec.metadata_fields if key in row}
    metadata = {key: _json_friendly(value) for key, value in metadata.items()}
    # Fail here, in the pre-check, not half-way through indexing.
    check_row_limits(text, metadata, where, spec.limits)
    try:
        (doc_id + text).encode("utf-8")
        metadata_json(metadata)
    except UnicodeEncodeError as exc:
        raise where.error(f"the id or text is not valid Unicode ({exc.reason})") from exc
    except InvalidMetadata as exc:
        raise where.error(f"{exc.message}; fix or drop that field") from exc
    return SourceDocument(doc_id=doc_id, text=text, metadata=metadata, line=where.number)


def check_row_limits(text: str, metadata: dict[str, Any], where: Location,
                     limits: InputLimits) -> None:
    """SourceError naming the line when a row's text or metadata is over a limit."""
    try:
        check_document("", text, metadata, limits)
    except LimitExceeded as exc:
        raise where.error(f"{exc.message.removeprefix(': ')}; split the document or raise "
                          "the limit") from exc


def _json_friendly(value: Any) -> Any:
    """Parquet gives dates, times and decimals: store them as ISO strings and numbers."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    return value


def _doc_id(row: Mapping[str, Any], field: str, where: Location) -> str:
    if field not in row:
        also = "" if field != "id" else " (nor '_id')"
        raise where.error(f"field {field!r} is missing{also}; every row needs an id")
    value = row[field]
    if isinstance(value, str):
        if not value.strip():
            raise where.error(f"field {field!r} is empty; every row needs an id")
        if problem := id_problem(value):
            raise where.error(f"field {field!r}: {problem}; change the id")
        return value
    if value is None:
        raise where.error(f"field {field!r} is null; every row needs an id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise where.error(
        f"field {field!r} must be a string or a number, got {type(value).__name__} {value!r}"
    )


def _join_text(row: Mapping[str, Any], fields: tuple[str, ...], where: Location) -> str:
    parts: list[str] = []
    for field in fields:
        if field not in row:
            raise where.error(f"field {field!r} is missing; every row needs its text")
        value = row[field]
        if value is None:
            continue
        if not isinstance(value, str):
            raise where.error(
                f"field {field!r} must be a string, got {type(value).__name__}; "
                "store the text as a string"
            )
        if value.strip():
            parts.append(value)
    if not parts:
        names = ", ".join(repr(field) for field in fields)
        subject = f"field {names} is" if len(fields) == 1 else f"fields {names} are"
        raise where.error(f"{subject} empty; remove the row or fill in its text")
    return " ".join(parts)

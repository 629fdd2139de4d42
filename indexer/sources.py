"""Streaming readers that turn corpus files (JSONL, CSV, TSV, Parquet, text) into documents."""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from indexer.models import SourceDocument
from storage import InvalidMetadata, metadata_json
from storage.errors import SemsearchError

FORMATS = ("jsonl", "csv", "tsv", "parquet", "txt")

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
    ".text": "txt",
}
# csv.field_size_limit takes a C long, which is 32 bits on Windows: sys.maxsize overflows there.
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
_PARQUET_BATCH = 1024


class SourceError(SemsearchError):
    """A corpus file cannot be read; the message names the file, the line and what to fix."""

    code = "bad_input_file"
    status = 400


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """Where a corpus lives and which of its fields hold the id, the text and the metadata."""

    path: Path
    format: str = "auto"
    id_field: str | None = None
    text_fields: tuple[str, ...] = ("text",)
    metadata_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        # A bare string would be iterated character by character as field names.
        if isinstance(self.text_fields, str) or not self.text_fields:
            raise SourceError(
                f"{self.path}: text_fields must be a non-empty tuple of field names, "
                f"got {self.text_fields!r}"
            )


@dataclass(frozen=True)
class _Location:
    """A line (or Parquet row) of a file, used to prefix error messages."""

    path: Path
    number: int
    unit: str = "line"

    def error(self, message: str) -> SourceError:
        return SourceError(f"{self.path} {self.unit} {self.number}: {message}")


def detect_format(path: Path, format: str = "auto") -> str:
    """Resolve the format of a corpus file.

    Args:
        path: The corpus file; only its suffix is looked at.
        format: ``"auto"`` to decide from the suffix, or one of ``FORMATS``.

    Returns:
        One of ``FORMATS``.

    Raises:
        SourceError: The format name is unknown, or ``"auto"`` cannot tell from the suffix.
    """
    name = format.strip().lower()
    if name in FORMATS:
        return name
    if name != "auto":
        raise SourceError(
            f"{path}: unknown format {format!r}; use one of: auto, {', '.join(FORMATS)}"
        )
    detected = _SUFFIXES.get(Path(path).suffix.lower())
    if detected is None:
        raise SourceError(
            f"{path}: cannot tell the format from the suffix {Path(path).suffix or '(none)'!r}; "
            f"pass --format {'|'.join(FORMATS)}"
        )
    return detected


def read_documents(spec: SourceSpec) -> Iterator[SourceDocument]:
    """Stream the documents of one corpus file, one row at a time.

    The path and the format are checked at once; rows are read lazily, so a bad
    row only raises when iteration reaches it, after the rows before it were yielded.

    Args:
        spec: The file and the fields to read. For ``txt`` files the field
            settings are ignored: each non-empty line is a document whose id is
            its line number.

    Returns:
        A generator of ``SourceDocument``, in file order.

    Raises:
        SourceError: The path is missing or a directory, or the format is unknown
            (immediately); a row is unusable (during iteration).
    """
    path = spec.path
    if not path.exists():
        raise SourceError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise SourceError(f"{path}: is a directory; pass a single corpus file")
    return _READERS[detect_format(path, spec.format)](spec)


def _read_jsonl(spec: SourceSpec) -> Iterator[SourceDocument]:
    with spec.path.open("rb") as handle:
        for number, line in _decode_lines(spec.path, handle):
            if not line.strip():
                continue
            where = _Location(spec.path, number)
            yield _to_document(_parse_object(line, where), where, spec)


def _read_csv(spec: SourceSpec) -> Iterator[SourceDocument]:
    return _read_delimited(spec, ",")


def _read_tsv(spec: SourceSpec) -> Iterator[SourceDocument]:
    return _read_delimited(spec, "\t")


def _read_delimited(spec: SourceSpec, delimiter: str) -> Iterator[SourceDocument]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with spec.path.open("rb") as handle:
        lines = _LineTracker(_decode_lines(spec.path, handle))
        reader = csv.DictReader(lines, delimiter=delimiter)
        width = _read_header(spec, reader, lines)
        while True:
            lines.start_record()
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise lines.location(spec.path).error(f"malformed row ({exc})") from exc
            where = lines.location(spec.path)
            _check_width(row, width, where)
            yield _to_document(row, where, spec)


def _read_parquet(spec: SourceSpec) -> Iterator[SourceDocument]:
    try:
        parquet_file = pq.ParquetFile(spec.path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"{spec.path}: not a readable Parquet file ({exc}); check the file or pass --format"
        ) from exc
    with parquet_file:
        names = list(parquet_file.schema_arrow.names)
        _check_columns(spec, names, str(spec.path))
        rows = _parquet_rows(spec.path, parquet_file, _parquet_columns(spec, names))
        for number, row in enumerate(rows, start=1):
            where = _Location(spec.path, number, "row")
            yield _to_document(row, where, spec)


def _read_txt(spec: SourceSpec) -> Iterator[SourceDocument]:
    with spec.path.open("rb") as handle:
        for number, line in _decode_lines(spec.path, handle):
            text = line.rstrip()
            if text:
                yield SourceDocument(doc_id=str(number), text=text, metadata={}, line=number)


_READERS: dict[str, Callable[[SourceSpec], Iterator[SourceDocument]]] = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
    "txt": _read_txt,
}


def _decode_lines(path: Path, handle: BinaryIO) -> Iterator[tuple[int, str]]:
    """Yield (line number, text); decoding line by line lets a UTF-8 error name its line."""
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise _Location(path, number).error(
                f"not valid UTF-8 ({exc.reason} at byte {exc.start + 1} of the line); "
                "re-save the file as UTF-8"
            ) from exc
        yield number, text


class _LineTracker:
    """Feeds lines to the csv module and remembers the physical line where a record starts."""

    def __init__(self, lines: Iterable[tuple[int, str]]) -> None:
        self._lines = iter(lines)
        self.number = 0
        self.record_start = 0

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        self.number, text = next(self._lines)
        # DictReader silently skips blank lines between records, so the first
        # non-blank line read for a record is where that record starts.
        if self.record_start == 0 and text.strip("\r\n"):
            self.record_start = self.number
        return text

    def start_record(self) -> None:
        self.record_start = 0

    def location(self, path: Path) -> _Location:
        return _Location(path, self.record_start or self.number + 1)


def _read_header(spec: SourceSpec, reader: csv.DictReader[str], lines: _LineTracker) -> int:
    """Check the header row once, so a missing column is reported at line 1, not per row."""
    lines.start_record()
    try:
        names = reader.fieldnames
    except csv.Error as exc:
        raise lines.location(spec.path).error(f"malformed header row ({exc})") from exc
    prefix = f"{spec.path} line {lines.record_start or 1}"
    if not names:
        raise SourceError(f"{prefix}: no header row; the first line must name the columns")
    duplicates = sorted({name for name in names if list(names).count(name) > 1})
    if duplicates:
        raise SourceError(f"{prefix}: column(s) {duplicates} appear more than once in the header")
    _check_columns(spec, list(names), prefix)
    return len(names)


def _check_columns(spec: SourceSpec, names: list[str], prefix: str) -> None:
    """Fail early when the id or a text column is absent from a CSV header or Parquet schema."""
    present = ", ".join(repr(name) for name in names)
    if _id_field(names, spec) not in names:
        wanted = repr(spec.id_field) if spec.id_field else "'id' (or '_id')"
        raise SourceError(
            f"{prefix}: no id column {wanted}; columns present: {present}. "
            "Rename the column or choose the id field"
        )
    for field in spec.text_fields:
        if field not in names:
            raise SourceError(
                f"{prefix}: no text column {field!r}; columns present: {present}. "
                "Rename the column or choose the text fields"
            )


def _check_width(row: Mapping[str | None, Any], width: int, where: _Location) -> None:
    # DictReader puts surplus values under the key None and fills missing ones with None.
    found = width
    if None in row:
        found += len(row[None])
    else:
        found -= sum(value is None for value in row.values())
    if found != width:
        raise where.error(
            f"expected {width} fields like the header, found {found}; "
            "quote values that contain the delimiter or a line break"
        )


def _parquet_columns(spec: SourceSpec, names: list[str]) -> list[str] | None:
    """Read only the columns needed when the metadata fields are given (None: all columns)."""
    if spec.metadata_fields is None:
        return None
    wanted = {_id_field(names, spec), *spec.text_fields, *spec.metadata_fields}
    return [name for name in names if name in wanted]


def _parquet_rows(
    path: Path, parquet_file: pq.ParquetFile, columns: list[str] | None
) -> Iterator[dict[str, Any]]:
    batches = parquet_file.iter_batches(batch_size=_PARQUET_BATCH, columns=columns)
    done = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise _Location(path, done + 1, "row").error(
                f"cannot read Parquet data ({exc}); the file may be corrupt"
            ) from exc
        rows: list[dict[str, Any]] = batch.to_pylist()
        done += len(rows)
        yield from rows


def _parse_object(line: str, where: _Location) -> Mapping[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = "each line must hold one JSON object"
        if where.number == 1 and line.lstrip().startswith("["):
            hint = "this looks like a JSON array; write one JSON object per line (JSON Lines)"
        raise where.error(f"invalid JSON ({exc.msg} at column {exc.colno}); {hint}") from exc
    if not isinstance(value, dict):
        raise where.error(
            f"expected a JSON object, got {type(value).__name__}; "
            "write one object per line, e.g. {\"id\": \"1\", \"text\": \"...\"}"
        )
    return value


def _id_field(row: Iterable[str] | Mapping[str, Any], spec: SourceSpec) -> str:
    if spec.id_field is not None:
        return spec.id_field
    keys = set(row)
    return "id" if "id" in keys or "_id" not in keys else "_id"


def _to_document(row: Mapping[str, Any], where: _Location, spec: SourceSpec) -> SourceDocument:
    id_field = _id_field(row, spec)
    doc_id = _doc_id(row, id_field, where)
    text = _join_text(row, spec.text_fields, where)
    if spec.metadata_fields is None:
        skip = {id_field, *spec.text_fields}
        metadata = {key: value for key, value in row.items() if key not in skip}
    else:
        metadata = {key: row[key] for key in spec.metadata_fields if key in row}
    metadata = {key: _json_friendly(value) for key, value in metadata.items()}
    try:
        (doc_id + text).encode("utf-8")
        metadata_json(metadata)  # fail here, in the pre-check, not half-way through indexing
    except UnicodeEncodeError as exc:
        raise where.error(f"the id or text is not valid Unicode ({exc.reason})") from exc
    except InvalidMetadata as exc:
        raise where.error(f"{exc.message}; fix or drop that field") from exc
    return SourceDocument(doc_id=doc_id, text=text, metadata=metadata, line=where.number)


def _json_friendly(value: Any) -> Any:
    """Parquet gives dates, times and decimals: store them as ISO strings and numbers."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    return value


def _doc_id(row: Mapping[str, Any], field: str, where: _Location) -> str:
    if field not in row:
        also = "" if field != "id" else " (nor '_id')"
        raise where.error(f"field {field!r} is missing{also}; every row needs an id")
    value = row[field]
    if isinstance(value, str):
        if not value.strip():
            raise where.error(f"field {field!r} is empty; every row needs an id")
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


def _join_text(row: Mapping[str, Any], fields: tuple[str, ...], where: _Location) -> str:
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

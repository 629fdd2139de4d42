"""Streaming readers that turn corpus files (JSONL, CSV, TSV, Parquet, text) into documents."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from indexer.models import SourceDocument
from indexer.source_rows import (
    Location,
    SourceError,
    SourceSpec,
    check_row_limits,
    id_field_name,
    to_document,
)

__all__ = ["FORMATS", "SourceError", "SourceSpec", "detect_format", "read_documents"]

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
# csv.field_size_limit takes a C long, which is 32 bits on Windows: larger values overflow there.
_CSV_FIELD_LIMIT = 2**31 - 1
_PARQUET_BATCH = 1024


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
        for number, line in _decode_lines(spec, handle):
            if not line.strip():
                continue
            where = Location(spec.path, number)
            yield to_document(_parse_object(line, where), where, spec)


def _read_csv(spec: SourceSpec) -> Iterator[SourceDocument]:
    return _read_delimited(spec, ",")


def _read_tsv(spec: SourceSpec) -> Iterator[SourceDocument]:
    return _read_delimited(spec, "\t")


def _read_delimited(spec: SourceSpec, delimiter: str) -> Iterator[SourceDocument]:
    csv.field_size_limit(min(spec.limits.line_bytes(), _CSV_FIELD_LIMIT))
    with spec.path.open("rb") as handle:
        lines = _LineTracker(_decode_lines(spec, handle))
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
            yield to_document(row, where, spec)


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
            where = Location(spec.path, number, "row")
            yield to_document(row, where, spec)


def _read_txt(spec: SourceSpec) -> Iterator[SourceDocument]:
    with spec.path.open("rb") as handle:
        for number, line in _decode_lines(spec, handle):
            text = line.rstrip()
            if text:
                check_row_limits(text, {}, Location(spec.path, number), spec.limits)
                yield SourceDocument(doc_id=str(number), text=text, metadata={}, line=number)


_READERS: dict[str, Callable[[SourceSpec], Iterator[SourceDocument]]] = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
    "txt": _read_txt,
}


def _decode_lines(spec: SourceSpec, handle: BinaryIO) -> Iterator[tuple[int, str]]:
    """Yield (line number, text); decoding line by line lets a UTF-8 error name its line.

    A line is read at most `spec.limits.line_bytes()` at a time, so memory stays bounded by
    the limits however long a line of the file is.
    """
    path, cap = spec.path, spec.limits.line_bytes()
    for number, raw in enumerate(iter(lambda: handle.readline(cap + 1), b""), start=1):
        if len(raw) > cap:
            raise Location(path, number).error(
                f"line is longer than {cap} bytes, more than a document within the limits needs "
                f"(SEMSEARCH_MAX_TEXT_CHARS={spec.limits.max_text_chars}, "
                f"SEMSEARCH_MAX_METADATA_BYTES={spec.limits.max_metadata_bytes}); split the "
                "document or raise the limits")
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise Location(path, number).error(
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

    def location(self, path: Path) -> Location:
        return Location(path, self.record_start or self.number + 1)


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
    if id_field_name(names, spec) not in names:
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


def _check_width(row: Mapping[str | None, Any], width: int, where: Location) -> None:
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
    wanted = {id_field_name(names, spec), *spec.text_fields, *spec.metadata_fields}
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
            raise Location(path, done + 1, "row").error(
                f"cannot read Parquet data ({exc}); the file may be corrupt"
            ) from exc
        rows: list[dict[str, Any]] = batch.to_pylist()
        done += len(rows)
        yield from rows


def _parse_object(line: str, where: Location) -> Mapping[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = "each line must hold one JSON object"
        if where.number == 1 and line.lstrip().startswith("["):
            hint = "this looks like a JSON array; write one JSON object per line (JSON Lines)"
        raise where.error(f"invalid JSON at column {exc.colno} ({exc.msg}); {hint}") from exc
    except RecursionError as exc:
        raise where.error("invalid JSON: nested too deeply to parse; flatten the object") from exc
    if not isinstance(value, dict):
        raise where.error(
            f"expected a JSON object, got {type(value).__name__}; "
            "write one object per line, e.g. {\"id\": \"1\", \"text\": \"...\"}"
        )
    return value


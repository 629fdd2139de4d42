"""FAQ files (CSV, JSONL, YAML) and labelled query files, parsed into checked records."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from indexer.sources import SourceError

FAQ_FORMATS = ("csv", "jsonl", "yaml")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".yaml": "yaml", ".yml": "yaml"}
# Labels that mean "this query has no intent in the FAQ" in a labelled file.
OUT_OF_SCOPE_LABELS = frozenset({"", "oos", "out_of_scope", "out-of-scope", "none", "null"})


@dataclass(frozen=True, kw_only=True)
class FaqEntry:
    """One intent: its questions (in file order, no duplicates) and its single answer."""

    intent: str
    questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True, kw_only=True)
class LabelledQuery:
    """A query with the intent it should match; intent None means out of scope."""

    query: str
    intent: str | None


@dataclass(frozen=True, kw_only=True)
class _Row:
    where: str  # "faq.csv line 3", used in every message about this row
    fields: Mapping[str, Any]
    split_questions: bool = False  # CSV: one cell may hold several questions, "|"-separated


def faq_format(path: Path, fmt: str = "auto") -> str:
    """The format of `path`: `fmt` if given, else from its suffix."""
    if fmt != "auto":
        if fmt not in FAQ_FORMATS:
            raise SourceError(f"{path}: unknown FAQ format '{fmt}'; use one of {', '.join(FAQ_FORMATS)}")
        return fmt
    found = _SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise SourceError(f"{path}: cannot tell the format from the suffix '{Path(path).suffix}'; "
                          f"name it .csv, .jsonl or .yaml")
    return found


def read_faq(path: Path, fmt: str = "auto") -> list[FaqEntry]:
    """Read and check an FAQ file: rows with `intent`, `question` (text or list), `answer`.

    In CSV several rows may share an intent and one cell may hold several questions
    separated by "|"; a row of an intent may leave `answer` empty if another row gives it.

    Args:
        path: the FAQ file.
        fmt: "auto" (by suffix), "csv", "jsonl" or "yaml".

    Returns:
        One entry per intent, in the order intents first appear.

    Raises:
        SourceError: naming the file, the line (or YAML item) and the field at fault.
    """
    path = Path(path)
    rows = list(_rows(path, faq_format(path, fmt)))
    if not rows:
        raise SourceError(f"{path}: no FAQ rows (expected intent, question, answer)")
    return _group(path, rows)


def read_labelled(path: Path, fmt: str = "auto") -> list[LabelledQuery]:
    """Read a labelled file of `query` and `intent` (empty, "oos" or null: out of scope).

    Args:
        path: a JSONL, CSV or YAML file.
        fmt: "auto" (by suffix), "csv", "jsonl" or "yaml".

    Returns:
        The labelled queries in file order.
    """
    path = Path(path)
    labelled = []
    for row in _rows(path, faq_format(path, fmt)):
        query = _text(row, "query")
        intent = row.fields.get("intent")
        if intent is not None and not isinstance(intent, str):
            raise SourceError(f"{row.where}: field 'intent' must be a string or null, "
                              f"got {type(intent).__name__}")
        label = (intent or "").strip()
        labelled.append(LabelledQuery(
            query=query, intent=None if label.lower() in OUT_OF_SCOPE_LABELS else label))
    if not labelled:
        raise SourceError(f"{path}: no labelled queries (expected query, intent)")
    return labelled


def _group(path: Path, rows: list[_Row]) -> list[FaqEntry]:
    questions: dict[str, list[str]] = {}
    answers: dict[str, tuple[str, str]] = {}  # intent -> (answer, where it was given)
    first_row: dict[str, str] = {}
    owner: dict[str, tuple[str, str]] = {}  # question -> (intent, where)
    for row in rows:
        intent = _text(row, "intent")
        first_row.setdefault(intent, row.where)
        answer = _optional_text(row, "answer")
        if answer:
            if intent in answers and answers[intent][0] != answer:
                raise SourceError(f"{row.where}: intent '{intent}' has a different answer than "
                                  f"at {answers[intent][1]}; an intent has exactly one answer")
            answers.setdefault(intent, (answer, row.where))
        for question in _questions(row):
            if question in owner and owner[question][0] != intent:
                raise SourceError(f"{row.where}: question '{question}' is already a question of "
                                  f"intent '{owner[question][0]}' ({owner[question][1]})")
            owner.setdefault(question, (intent, row.where))
            listed = questions.setdefault(intent, [])
            if question not in listed:
                listed.append(question)
    missing = [intent for intent in questions if intent not in answers]
    if missing:
        raise SourceError(f"{first_row[missing[0]]}: intent '{missing[0]}' has no answer "
                          "(field 'answer' is empty in all its rows)")
    return [FaqEntry(intent=intent, questions=tuple(qs), answer=answers[intent][0])
            for intent, qs in questions.items()]


def _text(row: _Row, name: str) -> str:
    value = row.fields.get(name)
    if value is None:
        raise SourceError(f"{row.where}: field '{name}' is missing")
    if not isinstance(value, str):
        raise SourceError(f"{row.where}: field '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise SourceError(f"{row.where}: field '{name}' is empty")
    return value.strip()


def _optional_text(row: _Row, name: str) -> str:
    if row.fields.get(name) is None:
        return ""
    return _text(row, name) if str(row.fields[name]).strip() else ""


def _questions(row: _Row) -> list[str]:
    value = row.fields.get("question")
    if value is None:
        raise SourceError(f"{row.where}: field 'question' is missing")
    if isinstance(value, str):
        items: list[Any] = value.split("|") if row.split_questions else [value]
    elif isinstance(value, list):
        items = value
    else:
        raise SourceError(f"{row.where}: field 'question' must be a string or a list of strings, "
                          f"got {type(value).__name__}")
    questions = []
    for position, item in enumerate(items):
        if not isinstance(item, str):
            raise SourceError(f"{row.where}: question {position + 1} must be a string, "
                              f"got {type(item).__name__}")
        if item.strip():
            questions.append(item.strip())
    if not questions:
        raise SourceError(f"{row.where}: field 'question' is empty")
    return questions


def _rows(path: Path, fmt: str) -> Iterator[_Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from exc
    if fmt == "csv":
        yield from _csv_rows(path, text)
    elif fmt == "jsonl":
        yield from _jsonl_rows(path, text)
    else:
        yield from _yaml_rows(path, text)


def _csv_rows(path: Path, text: str) -> Iterator[_Row]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        return
    try:
        for record in reader:
            where = f"{path} line {reader.line_num}"
            if None in record:
                raise SourceError(f"{where}: more cells than the {len(reader.fieldnames)} header columns")
            if not any((value or "").strip() for value in record.values()):
                continue  # a blank line
            yield _Row(where=where, fields={k.strip(): v for k, v in record.items() if k},
                       split_questions=True)
    except csv.Error as exc:
        raise SourceError(f"{path} line {reader.line_num}: bad CSV ({exc})") from exc


def _jsonl_rows(path: Path, text: str) -> Iterator[_Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{where}: not valid JSON at column {exc.colno} ({exc.msg})") from exc
        except RecursionError as exc:
            raise SourceError(f"{where}: not valid JSON: nested too deeply to parse") from exc
        if not isinstance(record, dict):
            raise SourceError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield _Row(where=where, fields=record)


def _yaml_rows(path: Path, text: str) -> Iterator[_Row]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        return
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a YAML list of items (- intent: ...), "
                          f"got a {type(data).__name__}")
    for position, (item, item_node) in enumerate(zip(data, node.value, strict=True), start=1):
        where = f"{path} item {position} (line {item_node.start_mark.line + 1})"
        if not isinstance(item, dict):
            raise SourceError(f"{where}: expected a mapping with intent, question, answer")
        yield _Row(where=where, fields={str(k): v for k, v in item.items()})

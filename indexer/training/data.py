"""Training files for `semsearch train`: pairs, triples, GTE layout, FAQ and labelled queries."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from indexer.faq.files import faq_format, read_faq, read_labelled
from indexer.sources import SourceError

TRAIN_FORMATS = ("pairs", "gte", "faq", "labelled")


@dataclass(frozen=True, kw_only=True)
class Example:
    """An anchor, the texts that answer it, optional given negatives, and its group.

    Texts of one group are never each other's negatives: an FAQ intent, or an anchor's set of
    positives in pair data.
    """

    anchor: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    group: str
    where: str


@dataclass(frozen=True, kw_only=True)
class TrainData:
    """The examples of a file, its format, and its fingerprint for the model card and resume."""

    examples: list[Example]
    fmt: str
    sha256: str
    size_bytes: int
    symmetric: bool  # FAQ-like: both sides are questions, encoded alike


def read_train_file(path: Path, *, max_chars: int) -> TrainData:
    """Read and check a training file; every error names the file and line.

    JSONL rows are `{"query", "positive"}` pairs, with `negative` (text) or `negatives` (list)
    for triples; or the GTE layout `{"query", "positive_passages", "negative_passages"}`
    (passages as texts or `{"text", "title"}`); or FAQ rows (`intent`, `question`, `answer`);
    or labelled queries (`query`, `intent`). CSV and YAML files are FAQs or labelled queries.

    Args:
        path: the training file.
        max_chars: longest text accepted (characters).

    Returns:
        The checked examples.

    Raises:
        SourceError: the file is missing, empty, or a row is bad (no positive, a duplicate,
            a text over the limit), with its line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise SourceError(f"{path}: the file is empty; give one training example per line")
    fmt = _detect(path, raw)
    if fmt == "faq":
        examples = _group_examples([(q, e.intent, f"{path} intent '{e.intent}'")
                                    for e in read_faq(path) for q in e.questions], path)
    elif fmt == "labelled":
        examples = _group_examples([(q.query, q.intent, f"{path} query '{q.query[:40]}'")
                                    for q in read_labelled(path) if q.intent is not None], path)
    else:
        examples = list(_pair_examples(path, raw, gte=fmt == "gte"))
    if not examples:
        raise SourceError(f"{path}: no training examples (an FAQ needs intents with 2+ questions)")
    for example in examples:
        for text in (example.anchor, *example.positives, *example.negatives):
            if len(text) > max_chars:
                raise SourceError(f"{example.where}: a text of {len(text):,} characters is over "
                                  f"the limit of {max_chars:,}; shorten or drop it")
    return TrainData(examples=examples, fmt=fmt, sha256=hashlib.sha256(raw).hexdigest(),
                     size_bytes=len(raw), symmetric=fmt in ("faq", "labelled"))


def split_validation(data: TrainData, fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out about `fraction` of the examples; their texts leave the training side entirely.

    FAQ-like data holds a question out only where its intent keeps two or more in training, so
    the held-out question still has a right answer to find.

    Returns:
        (train, validation); validation is empty when fraction is 0 or too few examples exist.
    """
    examples = list(data.examples)
    count = int(round(len(examples) * fraction))
    if count == 0 or len(examples) - count < 2:
        return examples, []
    rng = random.Random(seed)
    held = set(rng.sample(range(len(examples)), count))
    if data.symmetric:  # a held-out question needs 2+ of its intent left to train on and find
        left = {g: sum(e.group == g for e in examples) for g in {e.group for e in examples}}
        for i in sorted(held):
            if left[examples[i].group] > 2:
                left[examples[i].group] -= 1
            else:
                held.discard(i)
    validation = [examples[i] for i in sorted(held)]
    unseen = {e.anchor for e in validation}
    if not data.symmetric:
        unseen |= {p for e in validation for p in e.positives}
    train = []
    for i, example in enumerate(examples):
        if i in held or example.anchor in unseen:
            continue
        positives = tuple(p for p in example.positives if p not in unseen)
        if positives:
            train.append(replace(example, positives=positives))
    return train, validation


def _detect(path: Path, raw: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json"):
        faq_format(path)  # a clear error for an unknown suffix
        head = raw.decode("utf-8-sig", errors="replace").lstrip().splitlines()[0].lower()
        return "labelled" if "query" in head and "question" not in head else "faq"
    for number, line in enumerate(raw.decode("utf-8-sig", errors="replace").splitlines(), 1):
        if line.strip():
            record = _json(line, f"{path} line {number}")
            if "positive_passages" in record:
                return "gte"
            if "positive" in record:
                return "pairs"
            if "question" in record:
                return "faq"
            if "query" in record and "intent" in record:
                return "labelled"
            raise SourceError(f"{path} line {number}: no positive: expected 'positive' "
                              "(pairs, triples), 'positive_passages' (GTE layout), 'question' "
                              "(FAQ) or 'intent' (labelled queries)")
    raise SourceError(f"{path}: the file is empty; give one training example per line")


def _json(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SourceError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _group_examples(items: Sequence[tuple[str, str, str]], path: Path) -> list[Example]:
    """Texts grouped by intent: each text is an anchor whose positives are its group's others."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for text, intent, where in items:
        members = groups.setdefault(intent, [])
        if any(text == seen for seen, _ in members):
            raise SourceError(f"{where}: duplicate text '{text[:60]}' in intent '{intent}'")
        members.append((text, where))
    examples = []
    for intent, members in groups.items():
        texts = tuple(t for t, _ in members)
        for text, where in members if len(members) > 1 else []:
            examples.append(Example(anchor=text, positives=tuple(t for t in texts if t != text),
                                    group=intent, where=where))
    return examples


def _pair_examples(path: Path, raw: bytes, *, gte: bool) -> Iterator[Example]:
    seen: dict[tuple[str, tuple[str, ...], tuple[str, ...]], int] = {}
    for number, line in enumerate(raw.decode("utf-8-sig", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        record = _json(line, where)
        anchor = _text(record.get("query"), where, "query")
        if gte:
            positives = _texts(record.get("positive_passages"), where, "positive_passages")
            negatives = _texts(record.get("negative_passages", []), where, "negative_passages")
        else:
            positives = _texts(record.get("positive"), where, "positive")
            negatives = _texts(record.get("negatives", record.get("negative", [])), where,
                               "negatives")
        if not positives:
            raise SourceError(f"{where}: no positive: field '{'positive_passages' if gte else 'positive'}'"
                              " is missing or empty")
        key = (anchor, positives, negatives)
        if key in seen:
            raise SourceError(f"{where}: duplicate of line {seen[key]}; remove one of them")
        seen[key] = number
        yield Example(anchor=anchor, positives=positives,
                      negatives=tuple(n for n in negatives if n not in positives),
                      group=f"q:{anchor}", where=where)


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, dict):  # GTE passages: {"docid", "title", "text"}
        value = " ".join(str(value.get(k) or "") for k in ("title", "text")).strip()
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f"{where}: field '{name}' must be a non-empty text")
    return value.strip()


def _texts(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(_text(item, where, name) for item in items))

"""Limits on document shape, and filters whose cost does not grow with the collection's fields."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from storage import Collection, UnknownFilterField
from storage.errors import LimitExceeded
from storage.faiss.metadata import MetadataStore
from storage.limits import InputLimits, check_document, check_field_count
from tests.storage.helpers import commit, make_docs, make_vectors

LIMITS = InputLimits()


def test_check_document_names_the_setting() -> None:
    check_document("doc", "text", {"a": {"b": [1, 2, {"c": None}]}}, LIMITS)
    cases = [
        ("x" * 100_001, {}, "SEMSEARCH_MAX_TEXT_CHARS"),
        ("t", {f"k{n}": n for n in range(257)}, "SEMSEARCH_MAX_METADATA_KEYS"),
        ("t", {"k" * 257: 1}, "SEMSEARCH_MAX_METADATA_KEY_CHARS"),
        ("t", {"blob": "é" * 40_000}, "SEMSEARCH_MAX_METADATA_BYTES"),  # 80,000 UTF-8 bytes
    ]
    for text, metadata, setting in cases:
        with pytest.raises(LimitExceeded, match=setting) as info:
            check_document("doc 7", text, metadata, LIMITS)
        assert info.value.message.startswith("doc 7: ") and info.value.status == 400


def test_depth_counts_as_storage_does() -> None:
    def nest(levels: int) -> dict[str, object]:
        node: dict[str, object] = {}
        for _ in range(levels):
            node = {"x": node}
        return node

    check_document("d", "t", nest(16), LIMITS)  # storage's own ceiling accepts this too
    with pytest.raises(LimitExceeded, match="deeper than 16"):
        check_document("d", "t", nest(17), LIMITS)
    with pytest.raises(LimitExceeded, match="deeper than 3"):
        check_document("d", "t", nest(4), InputLimits(max_metadata_depth=3))


def test_field_count_is_checked_against_what_is_stored() -> None:
    check_field_count(["a", "b"], ["b", "c"], InputLimits(max_fields=3))
    with pytest.raises(LimitExceeded, match=r"4 distinct metadata fields \(2 new\).*MAX_FIELDS"):
        check_field_count(["a", "b"], ["c", "d"], InputLimits(max_fields=3))


def _steps(store: MetadataStore, work: Callable[[MetadataStore], object]) -> int:
    """SQLite virtual-machine steps `work(store)` runs: a cost measure with no timer."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store.conn.set_progress_handler(count, 1)
    try:
        work(store)
    finally:
        store.conn.set_progress_handler(None, 1)
    return steps


def test_filter_cost_does_not_depend_on_the_number_of_fields(
        new_collection: Callable[..., Collection]) -> None:
    """The same documents, with 4 fields or with 20,004: a filter does the same SQL work."""
    stores = []
    for name, extra in (("narrow", 0), ("wide", 20_000)):
        collection = new_collection(name)
        commit(collection, make_docs(make_vectors(300), metadata=lambda i: {
            "topic": "ab"[i % 2], "year": 2000 + i % 7, "tags": "x", "n": i}))
        with sqlite3.connect(collection.folder / "metadata.db") as conn:  # as an old collection
            conn.executemany("INSERT INTO fields (name) VALUES (?)",
                             [(f"extra{n:05d}",) for n in range(extra)])
        stores.append(MetadataStore(collection.folder / "metadata.db"))
    narrow, wide = stores
    try:
        assert wide.fields()[-1] == "year" and len(wide.fields()) == 20_004
        filter_ = {"topic": "a", "year": [2001, 2003]}
        assert list(narrow.matching_rowids(filter_)) == list(wide.matching_rowids(filter_))
        for work in (lambda s: s.matching_rowids(filter_),
                     lambda s: s.lexical_search("text doc", 5, filter_)):
            assert _steps(wide, work) == _steps(narrow, work)
        with pytest.raises(UnknownFilterField) as info:
            wide.matching_rowids({"colour": "red"})
        assert "and 19984 more" in info.value.message and len(info.value.message) < 600
    finally:
        for store in stores:
            store.close()

"""Bounds on what one document may carry (text, metadata shape), checked before any work."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storage.errors import LimitExceeded
from storage.records import MAX_METADATA_DEPTH

# The SEMSEARCH_* variable behind each limit, named in every message.
SETTING_NAMES = {
    "max_text_chars": "SEMSEARCH_MAX_TEXT_CHARS",
    "max_metadata_keys": "SEMSEARCH_MAX_METADATA_KEYS",
    "max_metadata_key_chars": "SEMSEARCH_MAX_METADATA_KEY_CHARS",
    "max_metadata_depth": "SEMSEARCH_MAX_METADATA_DEPTH",
    "max_metadata_bytes": "SEMSEARCH_MAX_METADATA_BYTES",
    "max_fields": "SEMSEARCH_MAX_FIELDS",
}


@dataclass(frozen=True, kw_only=True)
class InputLimits:
    """Per-document bounds shared by `semsearch index` and HTTP upserts.

    Attributes:
        max_text_chars: characters of a document's text.
        max_metadata_keys: keys in a document's metadata, counted at every nesting level.
        max_metadata_key_chars: characters of one metadata key.
        max_metadata_depth: nesting of metadata objects and lists (at most MAX_METADATA_DEPTH,
            the deepest storage accepts at all).
        max_metadata_bytes: UTF-8 bytes of the metadata as stored (compact JSON).
        max_fields: distinct top-level metadata field names in one collection; each filter
            and collection description reads them, so they must stay few.
    """

    max_text_chars: int = 100_000
    max_metadata_keys: int = 256
    max_metadata_key_chars: int = 256
    max_metadata_depth: int = MAX_METADATA_DEPTH
    max_metadata_bytes: int = 64 * 1024
    max_fields: int = 1024

    def line_bytes(self) -> int:
        """The longest line of a corpus file a document within these limits could need.

        JSON escapes take up to 12 bytes per character (a surrogate pair), so 16 bytes per
        allowed character of text and metadata, plus 1 MiB for ids and layout, is never short.
        """
        return 16 * (self.max_text_chars + self.max_metadata_bytes) + 2**20


def over(limits: InputLimits, name: str, found: str) -> LimitExceeded:
    """The error for `found` over limit `name`, naming the setting that raises it."""
    return LimitExceeded(f"{found}; the limit is {getattr(limits, name)} ({SETTING_NAMES[name]})")


def check_document(where: str, text: str, metadata: dict[str, Any], limits: InputLimits) -> None:
    """Refuse a document over a limit before any work is done on it.

    Args:
        where: what the document is (a request field or a file line), for the message.
        text: its text.
        metadata: its metadata (already known to be JSON-storable, or checked after this).
        limits: the bounds to apply.

    Raises:
        LimitExceeded: the text, a key, the key count, the nesting or the size is over its
            limit; the message names the setting. Work stops at the first excess, so a
            document with 200,000 keys costs no more than one with `max_metadata_keys + 1`.
    """
    if len(text) > limits.max_text_chars:
        raise over(limits, "max_text_chars", f"{where}: text has {len(text)} characters")
    _check_shape(where, metadata, limits)
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode("utf-8", "surrogatepass"))
    if size > limits.max_metadata_bytes:
        raise over(limits, "max_metadata_bytes", f"{where}: metadata is {size} bytes as JSON")


def _check_shape(where: str, metadata: dict[str, Any], limits: InputLimits) -> None:
    """Count keys, measure key lengths and depth, iteratively (no recursion on deep input)."""
    keys = 0
    stack: list[tuple[Any, int]] = [(metadata, 0)]  # depth counted as storage's metadata_json does
    while stack:
        value, depth = stack.pop()
        if depth > limits.max_metadata_depth:
            raise over(limits, "max_metadata_depth",
                       f"{where}: metadata is nested deeper than {limits.max_metadata_depth} levels")
        if isinstance(value, dict):
            keys += len(value)
            if keys > limits.max_metadata_keys:
                raise over(limits, "max_metadata_keys", f"{where}: metadata has more than "
                           f"{limits.max_metadata_keys} keys")
            for key, item in value.items():
                if isinstance(key, str) and len(key) > limits.max_metadata_key_chars:
                    raise over(limits, "max_metadata_key_chars",
                               f"{where}: metadata key '{key[:40]}...' has {len(key)} characters")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def check_field_count(known: Iterable[str], new: Iterable[str], limits: InputLimits) -> None:
    """Refuse a commit that would give a collection more distinct fields than `max_fields`.

    Args:
        known: the collection's fields now.
        new: the top-level metadata keys of the documents about to be committed.
        limits: for `max_fields`.

    Raises:
        LimitExceeded: the union is over `max_fields` (the message gives counts, not names).
    """
    fields = set(known)
    before = len(fields)
    fields.update(new)
    if len(fields) > limits.max_fields:
        raise over(limits, "max_fields", f"these documents would give the collection "
                   f"{len(fields)} distinct metadata fields ({len(fields) - before} new)")

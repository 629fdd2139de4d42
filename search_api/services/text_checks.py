"""Checks shared by every service that takes text: non-empty, bounded."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from search_api.config import ApiSettings
from search_api.errors import EmptyText, LimitExceeded
from storage import SemsearchError


def check_texts(field: str, texts: Sequence[str], settings: ApiSettings) -> None:
    """Refuse an empty list, too many items, blank or over-long texts; name the culprit.

    Args:
        field: the request field, used in messages (`field[i]` for an item).
        texts: the texts sent in that field.
        settings: for SEMSEARCH_MAX_SIMILARITY_ITEMS and SEMSEARCH_MAX_TEXT_CHARS.

    Raises:
        EmptyText: the list is empty, or an item is empty or whitespace only.
        LimitExceeded: too many items, or an item is too long.
    """
    check_texts_limit(field, texts, settings.max_similarity_items,
                      "SEMSEARCH_MAX_SIMILARITY_ITEMS", settings)


def check_texts_limit(field: str, texts: Sequence[str], limit: int, setting: str,
                      settings: ApiSettings) -> None:
    """Like `check_texts`, with another item limit.

    Args:
        field: the request field, used in messages.
        texts: the texts sent in that field.
        limit: most items allowed.
        setting: the variable that sets `limit`, named in the message.
        settings: for SEMSEARCH_MAX_TEXT_CHARS.
    """
    if not texts:
        raise EmptyText(f"'{field}' is an empty list: give at least one text")
    if len(texts) > limit:
        raise LimitExceeded(f"{len(texts)} items in '{field}'; the limit is {limit} ({setting})")
    for position, text in enumerate(texts):
        check_text(f"{field}[{position}]", text, settings)


def is_blank(text: str) -> bool:
    """Nothing a model can read: only white space, control or format characters (ZWSP, BOM)."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def check_text(where: str, text: str, settings: ApiSettings,
               empty_error: type[SemsearchError] = EmptyText) -> None:
    """Refuse a blank or over-long text, naming `where` it was.

    Args:
        where: the request field (and index), for the message.
        text: the text sent there.
        settings: for SEMSEARCH_MAX_TEXT_CHARS.
        empty_error: the error class for a blank text (EmptyQuery for queries).
    """
    if is_blank(text):
        raise empty_error(f"{where} is empty: give some text")
    if len(text) > settings.max_text_chars:
        raise LimitExceeded(f"{where} has {len(text)} characters; the limit is "
                            f"{settings.max_text_chars} (SEMSEARCH_MAX_TEXT_CHARS)")

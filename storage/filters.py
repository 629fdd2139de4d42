"""Metadata filters: their type and the checks every backend applies before it searches."""

from __future__ import annotations

from typing import Any

from storage.errors import InvalidFilter, UnknownFilterField

MAX_FILTER_VALUES = 256
MAX_FILTER_FIELDS = 64
MAX_LISTED_FIELDS = 20  # field names an error message lists (a collection may have thousands)
FilterValue = str | int | float | bool
Filter = dict[str, FilterValue | list[FilterValue]]


def require_known_field(field: str, known: set[str]) -> None:
    """UnknownFilterField unless `field` is one of the collection's metadata fields."""
    if field not in known:
        raise unknown_field(field, sorted(known)[:MAX_LISTED_FIELDS], len(known))


def unknown_field(field: str, sample: list[str], total: int) -> UnknownFilterField:
    """The error for a filter on an absent field; it lists at most MAX_LISTED_FIELDS names."""
    listing = ", ".join(sample) or "none"
    if total > len(sample):
        listing += f", and {total - len(sample)} more (GET /collections/{{name}} lists them)"
    shown = field if len(field) <= 100 else field[:100] + "..."
    return UnknownFilterField(f"filter field '{shown}' is not a metadata field of this collection "
                              f"(known fields: {listing})")


def check_filter_size(filter_: Filter) -> None:
    """InvalidFilter when a filter names more than MAX_FILTER_FIELDS fields."""
    if len(filter_) > MAX_FILTER_FIELDS:
        raise InvalidFilter(f"filter names {len(filter_)} fields; at most {MAX_FILTER_FIELDS} "
                            "may be combined")


def filter_values(field: str, value: Any) -> list[FilterValue]:
    if '"' in field:
        raise InvalidFilter(f"filter field {field!r}: names containing '\"' cannot be filtered on")
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_FILTER_VALUES:
        raise InvalidFilter(f"filter value for '{field}' must be a value or a list of 1 to "
                            f"{MAX_FILTER_VALUES} values")
    for item in values:
        if not isinstance(item, str | int | float | bool):
            raise InvalidFilter(f"filter value for '{field}' must be a string, number or boolean "
                                f"(or a list of them), got {type(item).__name__}")
        if isinstance(item, int) and not isinstance(item, bool) and not -2**63 <= item < 2**63:
            raise InvalidFilter(f"filter value for '{field}' does not fit in 64 bits: {item}")
    return list(values)

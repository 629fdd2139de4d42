"""Integrity of a collection's files: index checksums recorded at commit, database damage found at load."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from storage.errors import CollectionUnavailable
from storage.records import DB_FILE

CHECKSUM_KEY = "index_checksum"  # meta key: "<generation>:crc32:<hex>", committed with the generation
CHUNK = 1 << 20
QUICK_CHECK_ERRORS = 3  # problems quick_check lists before it stops (a reason, not a report)
# SQLite result codes that mean the file itself is damaged or gone, not that it is busy.
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR,
                           sqlite3.SQLITE_CANTOPEN})


def file_checksum(path: Path) -> str:
    """CRC-32 of a file read in 1 MB chunks, as "crc32:<8 hex digits>".

    CRC-32 catches every burst error up to 32 bits and random damage with probability
    1 - 2**-32; it guards against bad disks and stray writes, not against tampering.
    """
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return f"crc32:{crc:08x}"


def recorded_checksum(generation: int, checksum: str) -> str:
    """The meta value that ties `checksum` to the generation whose index file it describes."""
    return f"{generation}:{checksum}"


def index_problem(path: Path, recorded: str | None, generation: int) -> str | None:
    """Why `path`, the index file of `generation`, cannot be trusted; None if it can.

    Args:
        path: the index file (it exists).
        recorded: the meta value written at its commit; None in collections committed before
            checksums existed (they get one at their next commit).
        generation: the committed generation being loaded.

    Returns:
        A one-line reason, or None when the checksum matches or none was recorded for it.
    """
    if not recorded:
        return None
    recorded_generation, _, expected = recorded.partition(":")
    if recorded_generation != str(generation):  # committed by a version that kept no checksum
        return None
    try:
        actual = file_checksum(path)
    except OSError as exc:
        return f"{path.name} cannot be read ({exc})"
    if actual != expected:
        return (f"{path.name} does not match the checksum recorded at its commit "
                f"({expected} recorded, {actual} on disk)")
    return None


def is_damage(exc: sqlite3.Error) -> bool:
    """True if SQLite failed because its file is damaged or missing (not busy or misused)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    # A database truncated to nothing opens as an empty one, whose tables are missing.
    return code in _DAMAGE_CODES or "no such table" in str(exc)


def database_problem(conn: sqlite3.Connection) -> str | None:
    """SQLite's quick_check of the database structure: a reason, or None if it is sound."""
    rows = conn.execute(f"PRAGMA quick_check({QUICK_CHECK_ERRORS})").fetchall()
    found = [str(row[0]) for row in rows]
    return None if found == ["ok"] else "; ".join(found)


def unavailable(name: str, folder: Path, problem: str) -> CollectionUnavailable:
    """The error every request to a collection with a damaged or missing database gets."""
    return CollectionUnavailable(
        f"collection '{name}' is unavailable: its database {folder / DB_FILE} is damaged or "
        f"missing ({problem}); restore the collection folder from a backup or re-index it into "
        "a new collection (other collections are not affected)")


def unit_vectors(batches: Iterable[tuple[np.ndarray, np.ndarray]], name: str,
                 folder: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pass (ids, vectors) batches through, raising CollectionUnavailable on a damaged vector.

    Every stored vector was checked to be a finite unit vector when it was written, so one
    that is not has been changed on disk since: an index rebuilt from it would answer wrongly.
    """
    for ids, vectors in batches:
        norms = np.linalg.norm(vectors, axis=1)
        bad = ~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)
        if bad.any():
            raise unavailable(name, folder, f"stored vector of row {int(ids[bad][0])} is not a "
                                            "finite unit vector")
        yield ids, vectors

"""The file operations of a commit in one seam (for fault injection), and their failures as domain errors."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss

from storage.errors import StorageError, StorageFull, StorageIOError

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
STALE_SECONDS = 60.0  # a temp file untouched this long belongs to no live write
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = tuple(os.strerror(code) for code in _FULL_ERRNOS)
# FAISS reports its own I/O failures as RuntimeError with the C library's message inside.
_FAISS_IO_TEXTS = ("write error", "could not open", "fwrite", "read error")


class FileOps:
    """Every write a commit makes to the collection folder goes through one of these methods.

    Tests replace a method of `OPS` to fail at the Nth call (ENOSPC, EIO, a short write, a
    crash) and check that the collection still opens at the previous or the new generation.
    """

    def write_index(self, index: Any, path: Path) -> None:
        """Serialise a FAISS index to `path`."""
        faiss.write_index(index, str(path))

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Create or truncate `path` and write `data`."""
        with open(path, "wb") as fh:
            fh.write(data)

    def fsync(self, path: Path) -> None:
        """Flush `path`'s data to the disk."""
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())

    def replace(self, src: Path, dst: Path) -> None:
        """Rename `src` over `dst` atomically."""
        os.replace(src, dst)


OPS = FileOps()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temp file (write, fsync, os.replace); the temp file never outlives a failure.

    Args:
        path: the file to create or replace.
        write: writes the full content to the path it is given (the temp file).
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        write(tmp)
        OPS.fsync(tmp)
        OPS.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def sweep_temp_files(folder: Path, older_than: float = 0.0) -> list[str]:
    """Remove temp files that a failed or killed writer left in `folder`.

    Args:
        folder: a collection folder.
        older_than: only files not modified for this many seconds. A writer holding the write
            lock passes 0 (no temp file is live then); others pass STALE_SECONDS, since a live
            write keeps its temp file's modification time fresh.

    Returns:
        The names of the files removed.
    """
    removed = []
    now = time.time()
    for path in sorted(folder.glob("*" + TMP_SUFFIX)):
        try:
            stale = path.is_file() and now - path.stat().st_mtime >= older_than
        except OSError:  # removed meanwhile
            continue
        if stale and _remove_quietly(path):
            removed.append(path.name)
    if removed:
        logger.warning("removed temp files left by an interrupted write in %s: %s", folder,
                       ", ".join(removed))
    return removed


def _remove_quietly(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:  # the disk that failed the write may fail this too; report the first error
        logger.warning("could not remove temp file %s: %s", path, exc)
        return False


def write_failure(exc: BaseException, what: str, folder: Path) -> StorageError | None:
    """The domain error for a failed write (disk full or I/O error), or None if `exc` is neither.

    Args:
        exc: what the write raised (OSError, sqlite3.Error or FAISS's RuntimeError).
        what: what was being written, for the message (e.g. "collection 'docs', generation 7").
        folder: where, for the message and the free-space figure.

    Returns:
        StorageFull or StorageIOError with a one-line message saying what to do.
    """
    kind = _failure_kind(exc)
    if kind is None:
        return None
    reason = _reason(exc)
    where = f"cannot write {what} in {folder}: {reason} ({_free_space(folder)} free)"
    if kind == "full":
        return StorageFull(f"{where}; free disk space and run it again: the last committed "
                           "generation is intact and a rerun resumes")
    return StorageIOError(f"{where}; check the disk (e.g. dmesg) and run it again: the last "
                          "committed generation is intact")


def _failure_kind(exc: BaseException) -> str | None:
    if isinstance(exc, OSError):
        return "full" if exc.errno in _FULL_ERRNOS else "io"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # extended codes keep the primary low
        if code == sqlite3.SQLITE_FULL:
            return "full"
        return "io" if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN) else None
    if isinstance(exc, RuntimeError):
        text = str(exc)
        if any(full in text for full in _FULL_TEXTS):
            return "full"
        return "io" if any(io in text for io in _FAISS_IO_TEXTS) else None
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    full = [text for text in _FULL_TEXTS if text in str(exc)]
    if full:  # FAISS: "write error in <path>: 139182 != 196608 (No space left on device)"
        return full[0]
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.rsplit(": ", 1)[-1] if isinstance(exc, RuntimeError) else text


def _free_space(folder: Path) -> str:
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown space"
    for unit in ("B", "KB", "MB", "GB"):
        if free < 1024:
            return f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} TB"

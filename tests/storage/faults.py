"""Fault injection for commits, in the manner of SQLite's I/O-error tests.

Every file operation of a commit (storage.fileops.OPS) and every SQLite statement it makes
(the MetadataStore write methods) is counted; the Nth raises the fault instead of (or just
after) running. Real FAISS and SQLite do the work; only the failure is injected.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage import fileops
from storage.faiss.metadata import MetadataStore

FILE_OPS = ("write_index", "write_bytes", "fsync", "replace")
SQL_OPS = ("begin", "insert", "update", "delete", "add_fields", "set_meta", "commit")
# before: the operation fails without effect; short: a write stops half way, then fails;
# after: the operation takes effect but reports failure; crash: the process dies there.
FAULTS = ("enospc", "eio", "short", "after")


def sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    """An error shaped like the one SQLite raises (sqlite_errorcode set)."""
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


def _fault_for(op: str, fault: str) -> BaseException:
    if op in SQL_OPS:
        if fault == "eio":
            return sqlite_error(sqlite3.SQLITE_IOERR, "disk I/O error")
        return sqlite_error(sqlite3.SQLITE_FULL, "database or disk is full")
    if fault == "eio":
        return OSError(errno.EIO, os.strerror(errno.EIO))
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@dataclass
class FaultPlan:
    """Fail the `at`-th counted operation with `fault`; `ops` records every operation seen."""

    at: int
    fault: str
    crash: bool = False  # die (os._exit) at that operation instead of raising
    ops: list[str] = field(default_factory=list)
    fired: str | None = None

    def around(self, op: str, run: Callable[..., Any], *args: Any) -> Any:
        self.ops.append(op)
        if len(self.ops) != self.at:
            return run(*args)
        self.fired = op
        if self.crash:
            if self.fault == "after":
                run(*args)
            os._exit(17)
        if self.fault == "after":
            run(*args)
        elif self.fault == "short" and op in ("write_index", "write_bytes"):
            run(*args)
            path = Path(args[-1] if op == "write_index" else args[0])
            os.truncate(path, path.stat().st_size // 2)
        raise _fault_for(op, self.fault)


@contextmanager
def injected(plan: FaultPlan) -> Iterator[FaultPlan]:
    """Route the commit's operations through `plan` while the block runs."""
    saved_file = {name: getattr(fileops.OPS, name) for name in FILE_OPS}
    saved_sql = {name: getattr(MetadataStore, name) for name in SQL_OPS}
    for name, real in saved_file.items():
        setattr(fileops.OPS, name, _wrap(plan, name, real, bound=True))
    for name, real in saved_sql.items():
        setattr(MetadataStore, name, _wrap(plan, name, real, bound=False))
    try:
        yield plan
    finally:
        for name in FILE_OPS:
            delattr(fileops.OPS, name)  # back to the class's methods
        for name, real in saved_sql.items():
            setattr(MetadataStore, name, real)


def _wrap(plan: FaultPlan, name: str, real: Callable[..., Any], *, bound: bool) -> Callable[..., Any]:
    if bound:
        return lambda *args: plan.around(name, real, *args)
    return lambda self, *args: plan.around(name, lambda *a: real(self, *a), *args)

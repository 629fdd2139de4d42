"""Locks: a cross-process file lock for the single writer, a readers-writer lock in-process."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import CollectionLocked


class WriterLock:
    """Exclusive flock on a lock file: at most one writing process per collection.

    The OS releases an flock when its process dies, so a crashed writer never
    leaves a stale lock behind.
    """

    def __init__(self, path: Path, collection: str) -> None:
        self._path = path
        self._collection = collection
        self._fd: int | None = None

    def acquire(self, timeout: float) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise CollectionLocked(
                        f"collection '{self._collection}' is being written by another "
                        f"process{holder}; wait for it to finish or retry later"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextmanager
def in_process_writer(mutex: threading.Lock, collection: str, timeout: float) -> Iterator[None]:
    """Hold `mutex`, this process's one writer slot for `collection`, or raise CollectionLocked.

    Args:
        timeout: seconds to wait for another writer; 0 fails at once.
    """
    acquired = mutex.acquire(timeout=timeout) if timeout > 0 else mutex.acquire(blocking=False)
    if not acquired:
        raise CollectionLocked(f"collection '{collection}' is being written by another request "
                               "in this process; retry when it has finished")
    try:
        yield
    finally:
        mutex.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid else ""


class ReadWriteLock:
    """Many concurrent readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

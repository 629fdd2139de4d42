"""A real `semsearch serve` process on a free loopback port, for the scripts that measure it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(data_dir: Path, *, env: Mapping[str, str] | None = None,
                    timeout: float = 300) -> Iterator[str]:
    """Start `semsearch serve` on `data_dir`, yield its base URL once /readyz answers, always stop it.

    Its output goes to `server-<port>.log` beside the data dir, named in the error if it fails.
    """
    with service_process(data_dir, env=env, timeout=timeout) as (base, _):
        yield base


@contextmanager
def service_process(data_dir: Path, *serve_args: str, env: Mapping[str, str] | None = None,
                    timeout: float = 300) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like running_service, with more `serve` arguments; yields (base URL, server process)."""
    port = free_port()
    log_path = Path(data_dir).parent / f"server-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "search_api.cli", "serve", "--port", str(port),
                                   "--data-dir", str(data_dir), *serve_args],
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env=None if env is None else dict(env))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _ready(base):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"semsearch serve did not become ready; see {log_path}")
            time.sleep(0.3)
        yield base, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

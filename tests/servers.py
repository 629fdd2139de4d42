"""Run the real CLI and a real `semsearch serve` on loopback, always bounded in time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def cli(*args: str) -> list[str]:
    """The command line of `semsearch ARGS` in this interpreter."""
    return [sys.executable, "-m", "search_api.cli", *args]


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without the developer's own SEMSEARCH_* settings, plus `settings`.

    The test session's backend and export cache (tests/conftest.py) are kept. The server is
    one process unless `settings` say otherwise (the default, auto, forks one per core): it
    starts sooner, and the tests of several workers ask for them (tests/api/test_workers.py).
    """
    kept = ("SEMSEARCH_BACKEND", "SEMSEARCH_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_") or k in kept}
    env.update(HF_HUB_OFFLINE="1", SEMSEARCH_WORKERS="1")
    env.update(settings)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(data_dir: Path, *, env: dict[str, str] | None = None,
                   timeout: float = 120.0) -> Iterator[str]:
    """`semsearch serve` over `data_dir` on a free port; yields its base URL; always stopped.

    Args:
        data_dir: the collections to serve; the server log goes beside it.
        env: the server's environment (default: `clean_env()`).
        timeout: seconds to wait for /readyz.
    """
    with server_process(data_dir, env=env, timeout=timeout) as (base, _):
        yield base


@contextmanager
def server_process(data_dir: Path, *serve_args: str, env: dict[str, str] | None = None,
                   timeout: float = 120.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like running_server, with more `serve` arguments; yields (base URL, server process)."""
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(cli("serve", "--port", str(port), "--data-dir", str(data_dir),
                                      *serve_args),
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env=env if env is not None else clean_env())
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server, log_path, timeout)
        yield base, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)


def _wait_ready(base: str, server: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        tail = log_path.read_text(errors="replace")[-3000:]
        assert server.poll() is None, f"server exited with {server.returncode}:\n{tail}"
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"server not ready after {timeout:.0f} s:\n{tail}"
        time.sleep(0.2)

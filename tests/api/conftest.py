"""A real `semsearch serve` process (multilingual-e5-small-q4), shared by the HTTP-level tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SERVER_MODEL = "multilingual-e5-small-q4"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(log_path: Path) -> str:
    return log_path.read_text(encoding="utf-8", errors="replace")[-3000:]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{_log_tail(log_path)}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"server not ready after {START_TIMEOUT_S:.0f}s:\n{_log_tail(log_path)}")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of `python -m search_api.cli serve` over an empty data dir, SEMSEARCH_MODEL=e5.

    Started once per session, on first use, and terminated at the end.
    """
    data_dir = tmp_path_factory.mktemp("served-data")
    log_path = tmp_path_factory.mktemp("served-log") / "server.log"
    port = _free_port()
    # The developer's own SEMSEARCH_* settings (an API key, a data dir) must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")}
    env.update(SEMSEARCH_MODEL=SERVER_MODEL, HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "search_api.cli", "serve", "--port", str(port),
               "--data-dir", str(data_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)

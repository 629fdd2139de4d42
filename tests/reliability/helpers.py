"""Subprocess helpers: run the real CLI and server on loopback, always bounded in time."""

from __future__ import annotations

import json
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
    return [sys.executable, "-m", "search_api.cli", *args]


def write_corpus(path: Path, count: int) -> dict[str, str]:
    """Short, distinct documents; returns id -> text."""
    topics = ["apples", "rivers", "engines", "violins", "glaciers", "markets", "comets"]
    texts = {f"d{i:05d}": f"document {i} about {topics[i % len(topics)]} and item {i * 7 % 101}"
             for i in range(count)}
    with open(path, "w", encoding="utf-8") as fh:
        for doc_id, text in texts.items():
            fh.write(json.dumps({"id": doc_id, "text": text, "n": int(doc_id[1:])}) + "\n")
    return texts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(data_dir: Path, timeout: float = 120.0) -> Iterator[str]:
    """`semsearch serve` on a free loopback port; yields its base URL; always stopped."""
    port = free_port()
    log = open(data_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")}
    server = subprocess.Popen(cli("serve", "--port", str(port), "--data-dir", str(data_dir)),
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert server.poll() is None, f"server exited with {server.returncode}"
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
        log.close()

"""The benchmarks' load generator against a live uvicorn server: counts, bodies, errors."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

from scripts.evallib.loadgen import LoadError, closed_loop
from tests.servers import free_port


@pytest.fixture(scope="module")
def echo_url() -> Iterator[tuple[str, list[str]]]:
    """A real uvicorn server whose /echo records each query and refuses the query 'bad'."""
    app, seen = FastAPI(), []

    @app.post("/echo")
    def echo(body: dict[str, str]) -> dict[str, str]:
        if body["query"] == "bad":
            raise HTTPException(status_code=422, detail="bad query")
        seen.append(body["query"])
        return {"query": body["query"]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/echo", seen
    server.should_exit = True
    thread.join(timeout=10)


def test_every_answered_request_is_counted_once(echo_url: tuple[str, list[str]]) -> None:
    url, seen = echo_url
    seen.clear()
    numbers = itertools.count()
    qps, latencies = asyncio.run(closed_loop(url, lambda: {"query": f"q{next(numbers)}"}, 4, 0.5))
    # One warm-up request per connection, then every timed one is a latency.
    assert len(seen) == len(latencies) + 4
    assert len(set(seen)) == len(seen)  # each body was built fresh
    assert qps > 0 and all(0 < s < 5 for s in latencies)


def test_a_refused_request_stops_the_load(echo_url: tuple[str, list[str]]) -> None:
    url, _ = echo_url
    with pytest.raises(LoadError, match="422"):
        asyncio.run(closed_loop(url, lambda: {"query": "bad"}, 2, 0.5))

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

from scripts.bench import bench_load
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

    @app.post("/collections/{name}/search")  # the route scripts/bench.py loads
    def search(name: str, body: dict[str, str | int]) -> dict[str, list[str]]:
        return {"hits": []}

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


def test_bench_load_takes_rounds_in_turn_and_reports_medians_and_ratios(
        echo_url: tuple[str, list[str]]) -> None:
    base = echo_url[0].removesuffix("/echo")
    rows = bench_load({"a": base, "b": base}, ["q1", "q2"], [1, 3], 0.2, rounds=3)
    levels = [r for r in rows if "rounds" in r]
    assert [len(r["rounds"]) for r in levels] == [3, 3, 3, 3]
    for r in levels:
        assert r["value"] == sorted(r["rounds"])[1]  # the median of three
    a_single, a_three, b_single, b_three = levels
    assert a_three["baseline_value"] == a_single["value"]
    assert b_three["baseline_value"] == b_single["value"]
    versus = {r["what"]: r for r in rows if "rounds" not in r}
    assert versus["a vs b: 3 clients QPS"]["baseline_value"] == b_three["value"]
    assert versus["a vs b: 1 client p50 ms"]["value"] == a_single["p50"]

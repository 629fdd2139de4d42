"""A lean closed-loop HTTP/1.1 load generator: keep-alive sockets, one JSON POST at a time each.

The benchmarks run the load generator on the same cores as the server. httpx's AsyncClient
spent 2.0-2.3 ms of CPU per request there, which the server's QPS then paid for; these raw
asyncio connections spend 0.1-0.3 ms, so the measured QPS is the server's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


class LoadError(RuntimeError):
    """A request of the load test did not get 200 (the test stops: its numbers would mislead)."""


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                body: bytes) -> None:
    writer.write(b"POST %s HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    answer = await reader.readexactly(length)
    if status != 200:
        raise LoadError(f"{path} answered {status}: {answer[:300]!r}")


async def closed_loop(url: str, bodies: Callable[[], dict[str, Any]], clients: int,
                      duration: float) -> tuple[float, list[float]]:
    """`clients` connections, each sending its next request when the last one is answered.

    Args:
        url: the endpoint, e.g. http://127.0.0.1:8000/collections/docs/search.
        bodies: returns the next JSON body (called once per request).
        clients: concurrent connections.
        duration: seconds to run after one warm-up request per connection.

    Returns:
        (requests per second, each request's latency in seconds).
    """
    parts = urlsplit(url)
    path = parts.path or "/"
    connections = [await asyncio.open_connection(parts.hostname, parts.port or 80)
                   for _ in range(clients)]
    latencies: list[float] = []
    try:
        await asyncio.gather(*(_post(r, w, path, json.dumps(bodies()).encode())
                               for r, w in connections))
        started = time.perf_counter()
        deadline = started + duration

        async def one_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while time.perf_counter() < deadline:
                body = json.dumps(bodies()).encode()
                sent = time.perf_counter()
                await _post(reader, writer, path, body)
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(one_client(r, w) for r, w in connections))
        return len(latencies) / (time.perf_counter() - started), latencies
    finally:
        for _, writer in connections:
            writer.close()

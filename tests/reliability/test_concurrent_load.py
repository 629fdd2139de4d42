"""A bulk index runs while many clients search a live server: zero errors, all well-formed."""

from __future__ import annotations

import asyncio
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import cli, running_server, write_corpus

CLIENTS = 16
MAX_REQUESTS = 10000
# Each client waits this long between searches: with e5 on a fast backend the server answers
# thousands of searches before the indexer has loaded its model, so unpaced clients would hit
# MAX_REQUESTS before the first bulk commit (and starve the indexer of CPU meanwhile).
PAUSE_S = 0.2


def well_formed(body: dict[str, Any]) -> bool:
    hits = body.get("hits")
    if body.get("collection") != "live" or not isinstance(hits, list) or len(hits) > 5:
        return False
    scores = [hit["score"] for hit in hits]
    return scores == sorted(scores, reverse=True) and all(
        isinstance(hit["id"], str) and isinstance(hit["text"], str)
        and isinstance(hit["metadata"], dict) and -1.0001 <= hit["score"] <= 1.0001
        for hit in hits)


async def search_until(base: str, indexer: subprocess.Popen[bytes], deadline: float
                       ) -> tuple[int, list[str], set[int]]:
    done, errors, counts = 0, [], set()
    queries = ["apples and rivers", "engines", "a violin concert", "glaciers melting", "comets"]

    async def client(worker: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            turn = 0
            while indexer.poll() is None and time.monotonic() < deadline and done < MAX_REQUESTS:
                query = queries[(worker + turn) % len(queries)]
                turn += 1
                try:
                    response = await http.post("/collections/live/search",
                                               json={"query": query, "top_k": 5})
                    if response.status_code != 200 or not well_formed(response.json()):
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                done += 1
                await asyncio.sleep(PAUSE_S)
                if turn % 5 == 1:  # the generation the server has loaded, not just SQLite's
                    counts.add((await http.get("/collections/live")).json()["generation"])

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return done, errors, counts


@pytest.mark.timeout(400)
def test_searches_during_bulk_index_have_no_errors(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_corpus(tmp_path / "seed.jsonl", 20)
    seed = subprocess.run(cli("index", str(tmp_path / "seed.jsonl"), "-c", "live", "-q",
                              "--model", "multilingual-e5-small", "--data-dir", str(data_dir)),
                          capture_output=True, text=True, timeout=120)
    assert seed.returncode == 0, seed.stderr
    write_corpus(tmp_path / "bulk.jsonl", 800)
    with running_server(data_dir) as base:
        indexer = subprocess.Popen(
            cli("index", str(tmp_path / "bulk.jsonl"), "-c", "live", "-q", "--batch-size", "16",
                "--commit-every", "64", "--data-dir", str(data_dir)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # Its own thread: a session fixture (Playwright's) may own this thread's event loop.
            with ThreadPoolExecutor(1) as pool:
                done, errors, counts = pool.submit(
                    asyncio.run, search_until(base, indexer, time.monotonic() + 180)).result()
            assert indexer.wait(timeout=180) == 0, indexer.stderr.read() if indexer.stderr else ""
        finally:
            if indexer.poll() is None:
                indexer.kill()
        final = httpx.get(base + "/collections/live").json()
    print(f"concurrent load: {done} searches by {CLIENTS} clients, {len(errors)} errors, "
          f"generations loaded by the server meanwhile: {sorted(counts)}")
    assert errors == [], errors[:5]
    assert done >= 100, done
    assert len(counts) >= 3, f"the server did not reload during the load: {sorted(counts)}"
    assert final["count"] == 800  # the seed's 20 ids are among the bulk file's ids
    assert final["generation"] >= 10

"""`semsearch serve --workers 2`: several processes serve one data dir from one mapped index."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.servers import server_process


def shared_anonymous_mb(pid: int) -> float:
    """MB of a process's anonymous memory (heap and unnamed mappings) that other processes share."""
    total_kb, anonymous = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header: address range, perms, ...
            anonymous = len(fields) == 5 or fields[5] == "[heap]"
        elif anonymous and fields[0] in ("Shared_Clean:", "Shared_Dirty:"):
            total_kb += int(fields[1])
    return total_kb / 1024


@pytest.mark.timeout(300)
def test_two_workers_serve_searches_from_the_memory_mapped_index(data_dir: Path) -> None:
    with server_process(data_dir, "--workers", "2", timeout=240) as (base, server):
        for _ in range(6):  # new connections: both workers answer in turn
            with httpx.Client(timeout=60) as client:
                response = client.post(f"{base}/collections/docs/search",
                                       json={"query": "a distant galaxy", "top_k": 3, "mode": "dense"})
            assert response.status_code == 200, response.text
            assert response.json()["hits"][0]["id"] == "space-1"
        workers = [int(p) for p in
                   Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        mapped = [pid for pid in workers
                  if any(line.rstrip().endswith(".faiss")
                         for line in Path(f"/proc/{pid}/maps").read_text().splitlines())]
        assert len(mapped) >= 2, f"index file mapped in {len(mapped)} of {workers}"
        # Forked from a master that imported the libraries: their heap is shared copy-on-write.
        # Spawned interpreters share no anonymous memory at all.
        shared = {pid: shared_anonymous_mb(pid) for pid in workers}
        assert all(mb >= 20 for mb in shared.values()), f"shared anonymous MB per worker: {shared}"

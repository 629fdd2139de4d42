"""`semsearch serve --workers 2`: several processes serve one data dir from one mapped index."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from search_api.cli import AUTO_WORKERS_MAX, cli, worker_count
from search_api.config import ApiSettings
from tests.api.test_security_and_metrics import metric_samples
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


def _search_total(metrics_text: str) -> float:
    samples = metric_samples(metrics_text)
    return sum(value for (name, labels), value in samples.items()
               if name == "semsearch_http_requests_total"
               and dict(labels).get("route") == "/collections/{name}/search")


@pytest.mark.timeout(300)
def test_workers_share_commits_and_report_metrics_for_the_whole_service(data_dir: Path) -> None:
    """Whichever worker answers sees the other's commits, and /metrics counts every worker's
    requests (each keeps its counters in files the others read)."""
    search = "/collections/notes/search"
    with server_process(data_dir, "--workers", "2", timeout=240) as (base, _):
        with httpx.Client(base_url=base, timeout=60) as client:
            added = client.post("/collections/notes/documents", json={"documents": [
                {"id": "n1", "text": "the ferry leaves the harbour at dawn"},
                {"id": "n2", "text": "sourdough needs a long cold proof"}]})
            assert added.status_code == 200, added.text

        def fresh_search(_: int) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=60) as one:  # a new connection each time
                return one.post(search, json={"query": "boat crossing in the morning",
                                              "top_k": 1, "mode": "dense"})

        with ThreadPoolExecutor(8) as pool:  # concurrent connections reach both workers
            answers = list(pool.map(fresh_search, range(40)))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers][:2]
        assert {a.json()["hits"][0]["id"] for a in answers} == {"n1"}

        with httpx.Client(base_url=base, timeout=60) as client:
            assert client.delete("/collections/notes/documents/n1").status_code == 200
        with ThreadPoolExecutor(8) as pool:
            after = list(pool.map(fresh_search, range(16)))
        assert {a.json()["hits"][0]["id"] for a in after} == {"n2"}

        with ThreadPoolExecutor(4) as pool:
            scrapes = list(pool.map(lambda _: httpx.get(f"{base}/metrics", timeout=60).text,
                                    range(8)))
        assert {_search_total(text) for text in scrapes} == {56}


def test_auto_workers_are_one_per_core_up_to_the_cap() -> None:
    cores = len(os.sched_getaffinity(0))
    assert worker_count(ApiSettings(workers="auto")) == min(cores, AUTO_WORKERS_MAX)
    assert worker_count(ApiSettings()) == min(cores, AUTO_WORKERS_MAX)  # auto is the default
    assert worker_count(ApiSettings(workers=3)) == 3


def test_workers_option_takes_a_count_or_auto_and_rejects_anything_else(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "many", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "'many' is not a count from 1 to 64 or auto" in result.output
    result = CliRunner().invoke(cli, ["serve", "--workers", "0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2


def test_auto_is_one_worker_on_a_milvus_lite_file_and_more_are_refused(tmp_path: Path) -> None:
    """milvus-lite locks its .db to one process: a second worker could not open it."""
    cores = len(os.sched_getaffinity(0))
    assert worker_count(ApiSettings(storage="milvus")) == 1
    assert worker_count(ApiSettings(storage="milvus", milvus_uri=str(tmp_path / "m.db"))) == 1
    assert worker_count(ApiSettings(storage="milvus", milvus_uri="http://milvus:19530")) == \
        min(cores, AUTO_WORKERS_MAX)
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--data-dir", str(tmp_path)],
                                env={"SEMSEARCH_STORAGE": "milvus"})
    assert result.exit_code == 2
    assert "milvus-lite's .db file can be open in one process only" in result.output


def _established_per_worker(server_pid: int, port: int) -> dict[int, int]:
    """Established connections to `port` held by each worker of the server, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01":  # ESTABLISHED
                inodes.add(f"socket:[{inode}]")
    workers = [int(p) for p in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()]
    return {pid: sum(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
            for pid in workers}


@pytest.mark.timeout(300)
def test_connections_spread_over_the_workers_and_none_waits_on_the_master(data_dir: Path) -> None:
    """Each worker accepts on its own SO_REUSEPORT socket: a burst of connections is shared
    between them (on one shared socket, one worker could take all), and the master's socket,
    which only keeps the port, never holds a connection nobody accepts."""
    with server_process(data_dir, "--workers", "2", timeout=240) as (base, server):
        for _ in range(60):  # fresh connections, each answered promptly
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        port = int(base.rsplit(":", 1)[1])
        burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        try:
            for connection in burst:  # each connection is accepted once it is answered
                connection.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            for connection in burst:
                assert connection.recv(100).startswith(b"HTTP/1.1 200")
            per_worker = _established_per_worker(server.pid, port)
        finally:
            for connection in burst:
                connection.close()
    assert len(per_worker) == 2 and sum(per_worker.values()) == 32, per_worker
    # Spread by the kernel's hash of each connection: fewer than 4 of 32 on one worker has a
    # chance of about 3 in a million.
    assert min(per_worker.values()) >= 4, per_worker


def test_a_bad_workers_variable_names_itself_and_what_it_takes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path)],
                                env={"SEMSEARCH_WORKERS": "0"})
    assert result.exit_code != 0
    assert "SEMSEARCH_WORKERS" in result.output
    assert "'0' is not a count from 1 to 64 or auto" in result.output
    assert ApiSettings(workers="AUTO").workers == "auto"

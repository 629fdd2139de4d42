"""A Milvus collection written by one process is listed, checked, updated and searched by the next
(dense, lexical and hybrid, English and Chinese).

Each step is a new `semsearch` process (CLI or `serve`), as a user runs them; for the server
flavour the milvus-lite server is also restarted between the write and the reads, so nothing
the writer loaded is still loaded. A process that did not load what it queries fails with
"collection ... is in state 'released'".
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.contract.conftest import milvus_server, require_milvus
from tests.servers import clean_env, cli, running_server

NAME = "reopened"
MODEL = "all-MiniLM-L6-v2"
ROWS = [
    {"id": "a", "text": "Vitamin D is made in the skin when it is exposed to sunlight", "kind": "health"},
    {"id": "b", "text": "The football team won the championship final last night", "kind": "sport"},
    {"id": "c", "text": "A recipe for tomato soup with fresh basil", "kind": "food"},
    {"id": "z", "text": "今天天气很好，我们去公园散步吧", "kind": "daily"},
]
UPDATES = [  # b's text changes (a new vector), d is new
    {"id": "b", "text": "Marathon runners train for months to build endurance", "kind": "sport"},
    {"id": "d", "text": "The telescope captured images of a distant spiral galaxy", "kind": "science"},
]
CLI_TIMEOUT_S = 300


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def semsearch(env: dict[str, str], *args: str) -> str:
    """Run `semsearch ARGS` in a new process; it must succeed; returns its stdout."""
    done = subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, f"semsearch {' '.join(args)} exited {done.returncode}:\n" \
                                 f"{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def milvus_env(uri: str | None) -> dict[str, str]:
    """Settings for Milvus at `uri`; None: the default, milvus-lite's `<data dir>/milvus.db`."""
    return clean_env(SEMSEARCH_STORAGE="milvus", **({"SEMSEARCH_MILVUS_URI": uri} if uri else {}))


def write_collection(tmp_path: Path, uri: str | None) -> None:
    out = semsearch(milvus_env(uri), "index", str(write_jsonl(tmp_path / "rows.jsonl", ROWS)),
                    "-c", NAME, "-q", "--data-dir", str(tmp_path / "data"))
    assert "4 documents in collection" in out, out


def reopen_and_use(tmp_path: Path, uri: str | None) -> None:
    """List, check, upsert into and search the collection, each from a new process."""
    env, data = milvus_env(uri), str(tmp_path / "data")
    listed = json.loads(semsearch(env, "collections", "--json", "--data-dir", data))
    # The default splits documents into passages (these short ones make one passage each).
    assert listed == [{"name": NAME, "model": MODEL, "count": 4, "passages": 4}]
    assert f"{NAME}: ok (generation 1, 4 documents)" in semsearch(env, "check", "--data-dir", data)

    out = semsearch(env, "index", str(write_jsonl(tmp_path / "updates.jsonl", UPDATES)), "-c", NAME,
                    "-q", "--data-dir", data)
    assert "added 1, updated 1" in out and "5 documents in collection" in out, out
    assert f"{NAME}: ok (generation 2, 5 documents)" in semsearch(env, "check", "-c", NAME,
                                                                  "--data-dir", data)

    with running_server(tmp_path / "data", env=env) as base:
        ready = httpx.get(base + "/readyz", timeout=30).json()
        assert NAME in ready["collections"] and ready["errors"] == {}
        for query, expected in [("stars and galaxies seen through a telescope", UPDATES[1]),
                                ("training for a long distance run", UPDATES[0]),
                                ("sunlight and vitamin D", ROWS[0])]:
            response = httpx.get(base + "/search", params={"q": query, "collection": NAME,
                                                           "mode": "dense", "top_k": 4}, timeout=60)
            assert response.status_code == 200, response.text
            hits = response.json()["hits"]
            assert len(hits) == 4
            assert (hits[0]["id"], hits[0]["text"]) == (expected["id"], expected["text"]), hits
            assert hits[0]["metadata"] == {"kind": expected["kind"]}
            passage = hits[0]["passage"]
            assert passage["text"] == expected["text"][passage["start"]:passage["end"]] != ""
        for mode in ("lexical", "hybrid"):  # Milvus's BM25, in a process that did not write it
            for query, expected in [("distant spiral galaxy", UPDATES[1]), ("公园散步", ROWS[3]),
                                    ("marathon endurance", UPDATES[0])]:
                response = httpx.get(base + "/search", params={"q": query, "collection": NAME,
                                                               "mode": mode, "top_k": 2}, timeout=60)
                assert response.status_code == 200, response.text
                assert response.json()["hits"][0]["id"] == expected["id"], (mode, query)


def test_milvus_lite_db_is_reopened_by_later_processes(tmp_path: Path) -> None:
    """The default milvus-lite `.db`: each process starts (and stops) its own milvus-lite."""
    require_milvus()
    write_collection(tmp_path, None)
    assert (tmp_path / "data" / "milvus.db").exists()
    reopen_and_use(tmp_path, None)


def test_milvus_server_collection_survives_a_restart(tmp_path: Path) -> None:
    """A Milvus server restarted after the write: the catalog and collection start released."""
    require_milvus()
    with milvus_server(tmp_path) as uri:
        write_collection(tmp_path, uri)
    with milvus_server(tmp_path) as uri:
        reopen_and_use(tmp_path, uri)

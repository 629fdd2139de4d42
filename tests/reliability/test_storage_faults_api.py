"""Storage faults seen over HTTP: damaged collections refused with a reason, write faults as 507/503.

The fake encoder is enough here: the subject is storage, not search quality.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from indexer.encoding import Encoder, FakeEncoder
from indexer.models import SourceDocument
from indexer.pipeline import index_documents, open_collection
from search_api.config import ApiSettings
from search_api.main import create_app
from tests.storage.faults import FaultPlan, injected
from tests.storage.test_integrity import garbage_pages, xor_bytes

QUERIES = ["alpha river", "beta engine", "gamma violin", "delta market", "comet"]
UPSERT = {"documents": [{"id": "n1", "text": "a new document about rivers"},
                        {"id": "d3", "text": "document 3 rewritten"}]}


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return FakeEncoder(dimension=16)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Path:
    """A data dir with collections 'good' and 'bad' (60 documents each), closed."""
    data = tmp_path_factory.mktemp("api") / "data"
    for name in ("good", "bad"):
        collection = open_collection(data, name, encoder)
        index_documents(collection, encoder, [
            SourceDocument(doc_id=f"d{i}", text=f"document {i} about {QUERIES[i % 5]}")
            for i in range(60)])
        collection.close()
    return data


@contextmanager
def serving(data: Path, encoder: Encoder) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(data_dir=data), encoders={encoder.name: encoder})) as client:
        yield client


def answers(client: TestClient, name: str) -> list[Any]:
    response = client.post(f"/collections/{name}/search", json={"queries": QUERIES, "top_k": 10})
    assert response.status_code == 200, response.text
    return [[(hit["id"], round(hit["score"], 5)) for hit in result["hits"]]
            for result in response.json()["results"]]


def metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def test_bit_flipped_index_is_rebuilt_and_served_right(source: Path, tmp_path: Path,
                                                       encoder: Encoder) -> None:
    with serving(source, encoder) as client:
        expected = answers(client, "bad")
    data = shutil.copytree(source, tmp_path / "copy")
    xor_bytes(data / "bad" / "index-1.faiss")
    with serving(data, encoder) as client:
        assert client.get("/readyz").status_code == 200
        assert answers(client, "bad") == expected
        assert metric(client, 'semsearch_index_rebuilds_total{collection="bad"}') == 1
        assert metric(client, 'semsearch_collection_available{collection="bad"}') == 1


@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_damaged_database_is_refused_while_others_serve(source: Path, tmp_path: Path,
                                                        encoder: Encoder, damage: str) -> None:
    data = shutil.copytree(source, tmp_path / "copy")
    if damage == "corrupt":
        garbage_pages(data / "bad" / "metadata.db")
    else:
        (data / "bad" / "metadata.db").unlink()
    with serving(data, encoder) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "collection 'bad' is unavailable: its database" in ready.json()["errors"]["bad"]
        assert "good" not in ready.json()["errors"]
        assert len(answers(client, "good")) == len(QUERIES)
        for request in (lambda: client.post("/collections/bad/search", json={"query": "comet"}),
                        lambda: client.get("/collections/bad/documents/d1"),
                        lambda: client.post("/collections/bad/documents", json=UPSERT)):
            response = request()
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "collection_unavailable"
            assert "restore the collection folder from a backup" in error["message"]
        assert metric(client, 'semsearch_collection_available{collection="bad"}') == 0
        assert metric(client, 'semsearch_collection_available{collection="good"}') == 1

        shutil.copy2(source / "bad" / "metadata.db", data / "bad" / "metadata.db")  # restored
        assert client.get("/collections/bad/documents/d1").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert metric(client, 'semsearch_collection_available{collection="bad"}') == 1


@pytest.mark.parametrize("fault", ["enospc", "eio"])
def test_fault_at_every_operation_of_an_http_upsert(source: Path, tmp_path: Path,
                                                    encoder: Encoder, fault: str) -> None:
    with serving(shutil.copytree(source, tmp_path / "reference"), encoder) as client:
        before = answers(client, "good")
        assert client.post("/collections/good/documents", json=UPSERT).status_code == 200
        after = answers(client, "good")
    status, code = (507, "storage_full") if fault == "enospc" else (503, "storage_io_error")
    at, failures = 0, 0
    while True:
        at += 1
        data = shutil.copytree(source, tmp_path / f"{fault}-{at}")
        with serving(data, encoder) as client:
            with injected(FaultPlan(at, fault)) as plan:
                response = client.post("/collections/good/documents", json=UPSERT)
            if plan.fired is None:
                assert response.status_code == 200
                break
            if response.status_code != 200:  # a fault after the commit point is only logged
                failures += 1
                assert response.status_code == status, response.text
                assert response.json()["error"]["code"] == code
                assert "run it again" in response.json()["error"]["message"]
            seen = answers(client, "good")  # still readable, at one whole generation
            assert seen in (before, after)
            assert client.get("/readyz").status_code == 200
            assert not list((data / "good").glob("*.tmp"))
            assert client.post("/collections/good/documents", json=UPSERT).status_code == 200
            assert answers(client, "good") == after
    assert failures >= 10


def test_database_damaged_while_serving_then_restored(source: Path, tmp_path: Path,
                                                      encoder: Encoder) -> None:
    data = shutil.copytree(source, tmp_path / "copy")
    db = data / "bad" / "metadata.db"
    with serving(data, encoder) as client:
        expected = answers(client, "bad")
        # Later reads open fresh connections, which see the file as it is on disk now.
        client.app.state.services.collections.get("bad")._readers.close()  # type: ignore[attr-defined]
        original = db.read_bytes()
        with open(db, "r+b") as fh:  # in place: the same file, its header overwritten
            fh.write(b"\xff" * 100)

        for _ in range(2):  # every request, not only the one that found it
            response = client.post("/collections/bad/search", json={"query": "comet"})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "collection_unavailable"
        assert "bad" in client.get("/readyz").json()["errors"]
        assert len(answers(client, "good")) == len(QUERIES)

        db.write_bytes(original)  # restored in place
        assert answers(client, "bad") == expected
        assert client.get("/readyz").status_code == 200

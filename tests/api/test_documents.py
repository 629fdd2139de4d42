"""Upsert / delete round trips over HTTP, persistence across restarts, other writers."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from indexer.models import SourceDocument
from indexer.pipeline import index_documents
from search_api.config import ApiSettings
from storage import Collection
from tests.api.test_errors import assert_error
from tests.conftest import make_client


def top_ids(client: TestClient, query: str, name: str = "docs", k: int = 3) -> list[str]:
    response = client.post(f"/collections/{name}/search", json={"query": query, "top_k": k})
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


def upsert(client: TestClient, docs: list[dict[str, object]], name: str = "docs",
           **extra: object) -> dict[str, object]:
    response = client.post(f"/collections/{name}/documents", json={"documents": docs, **extra})
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def test_upsert_round_trip(client: TestClient) -> None:
    new = {"id": "garden-1", "text": "Planting tomatoes and watering the vegetable garden",
           "metadata": {"topic": "garden"}}
    first = upsert(client, [new])
    assert (first["added"], first["updated"], first["unchanged"], first["count"]) == (1, 0, 0, 9)
    assert top_ids(client, "growing vegetables")[0] == "garden-1"

    again = upsert(client, [new])
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 1)
    assert again["generation"] == first["generation"]

    changed = dict(new, text="Repairing a flat tyre on a mountain bike")
    updated = upsert(client, [changed])
    assert (updated["added"], updated["updated"], updated["count"]) == (0, 1, 9)
    assert top_ids(client, "fixing a bicycle puncture")[0] == "garden-1"
    assert "garden-1" not in top_ids(client, "growing vegetables", k=1)

    fetched = client.get("/collections/docs/documents/garden-1").json()
    assert fetched == {"id": "garden-1", "text": changed["text"], "metadata": {"topic": "garden"}}

    deleted = client.delete("/collections/docs/documents/garden-1")
    assert deleted.status_code == 200
    assert deleted.json()["count"] == 8
    assert "garden-1" not in top_ids(client, "fixing a bicycle puncture", k=8)
    assert_error(client.get("/collections/docs/documents/garden-1"), 404, "document_not_found")
    assert_error(client.delete("/collections/docs/documents/garden-1"), 404, "document_not_found")


def test_metadata_only_change_is_an_update(client: TestClient) -> None:
    doc = {"id": "bake-1", "text": "How to bake sourdough bread at home with a starter",
           "metadata": {"topic": "baking"}}
    result = upsert(client, [doc])
    assert (result["updated"], result["added"]) == (1, 0)
    hits = client.post("/collections/docs/search",
                       json={"query": "bread", "top_k": 5, "filter": {"topic": "baking"}}).json()
    assert [h["id"] for h in hits["hits"]] == ["bake-1"]


def test_upsert_creates_collection_with_requested_model(client: TestClient) -> None:
    docs = [{"id": 1, "text": "北京是中国的首都"}, {"id": 2, "text": "熊猫喜欢吃竹子"}]
    result = upsert(client, docs, name="zh", model="multilingual-e5-small")
    assert result["model"] == "multilingual-e5-small"
    assert result["count"] == 2
    assert top_ids(client, "大熊猫吃什么", name="zh")[0] == "2"
    listing = {c["name"]: c["model"] for c in client.get("/collections").json()["collections"]}
    assert listing == {"docs": "all-MiniLM-L6-v2", "zh": "multilingual-e5-small"}


def test_upsert_validation(client: TestClient) -> None:
    url = "/collections/docs/documents"
    assert_error(client.post(url, json={"documents": []}), 422, "invalid_request", "documents")
    assert_error(client.post(url, json={"documents": [{"text": "no id"}]}), 422,
                 "invalid_request", "id")
    assert_error(client.post(url, json={"documents": [{"id": "a", "text": "  "}]}), 400,
                 "empty_text", "documents[0]")
    assert_error(client.post(url, json={"documents": [{"id": "a", "text": "x"}],
                                        "model": "multilingual-e5-small"}), 409,
                 "model_mismatch")
    assert_error(client.post(url, json={"documents": [{"id": "a", "text": "x"}],
                                        "model": "/no/such/model"}), 409, "model_mismatch")
    assert_error(client.post("/collections/new/documents",
                             json={"documents": [{"id": "a", "text": "x"}], "model": "../../.."}),
                 400, "unknown_model", "'../../..' is not available", "multilingual-e5-small")
    assert "new" not in [c["name"] for c in client.get("/collections").json()["collections"]]
    assert_error(client.post(url, json={"documents": [{"id": "a", "text": "x",
                                                       "metadata": "not-a-dict"}]}),
                 422, "invalid_request", "metadata")
    assert client.get("/collections/docs").json()["count"] == 8


def test_too_many_documents(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    with make_client(ApiSettings(data_dir=data_dir, max_documents=2), minilm) as client:
        docs = [{"id": str(i), "text": f"text {i}"} for i in range(3)]
        assert_error(client.post("/collections/docs/documents", json={"documents": docs}), 400,
                     "limit_exceeded", "SEMSEARCH_MAX_DOCUMENTS")


def test_restart_keeps_everything(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir)
    with make_client(settings, minilm) as client:
        upsert(client, [{"id": "new", "text": "Volcanoes erupt lava and ash"}])
        client.delete("/collections/docs/documents/sport-2")
        before = client.post("/collections/docs/search", json={"query": "eruption", "top_k": 8}).json()
    with make_client(settings, minilm) as client:
        after = client.post("/collections/docs/search", json={"query": "eruption", "top_k": 8}).json()
        assert client.get("/collections/docs").json()["count"] == 8
    assert [h["id"] for h in after["hits"]] == [h["id"] for h in before["hits"]]
    assert before["hits"][0]["id"] == "new"
    assert "sport-2" not in [h["id"] for h in after["hits"]]


def test_api_sees_writes_from_another_process_handle(client: TestClient, data_dir: Path,
                                                     minilm) -> None:  # type: ignore[no-untyped-def]
    assert top_ids(client, "growing vegetables")[0] != "other-writer"
    other = Collection.open(data_dir, "docs")  # as the CLI would, with its own handle
    doc = SourceDocument(doc_id="other-writer", text="Growing vegetables in a greenhouse")
    index_documents(other, minilm, [doc])
    other.close()
    assert top_ids(client, "growing vegetables")[0] == "other-writer"
    assert client.get("/collections/docs").json()["count"] == 9

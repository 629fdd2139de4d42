"""Search endpoints over a real MiniLM collection."""

from __future__ import annotations

from fastapi.testclient import TestClient


def search(client: TestClient, body: dict[str, object], name: str = "docs") -> dict[str, object]:
    response = client.post(f"/collections/{name}/search", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/health").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["collections"] == ["docs"]
    assert ready.json()["models"] == ["all-MiniLM-L6-v2"]


def test_semantic_top_hit_and_shape(client: TestClient) -> None:
    data = search(client, {"query": "making bread in my kitchen", "top_k": 3, "mode": "dense"})
    assert data["collection"] == "docs" and data["mode"] == "dense"
    assert data["model"] == "all-MiniLM-L6-v2"
    assert data["truncated"] is False
    hits = data["hits"]
    assert isinstance(hits, list) and len(hits) == 3
    assert hits[0]["id"] == "bake-1"
    assert hits[0]["text"].startswith("How to bake sourdough")
    assert hits[0]["metadata"] == {"topic": "cooking", "lang": "en", "year": 2021, "featured": True}
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert 0.3 < scores[0] <= 1.0
    assert isinstance(data["took_ms"], float)
    default = search(client, {"query": "making bread in my kitchen", "top_k": 3})
    assert default["mode"] == "hybrid" and default["hits"][0]["id"] == "bake-1"


def test_scores_are_cosine_of_the_model_vectors(client: TestClient, minilm) -> None:  # type: ignore[no-untyped-def]
    query_vec = minilm.encode(["deep learning hardware"], "query")[0]
    for mode, field in (("dense", "score"), ("hybrid", "dense_score")):
        data = search(client, {"query": "deep learning hardware", "top_k": 1, "mode": mode})
        hit = data["hits"][0]
        doc_vec = minilm.encode([hit["text"]], "document")[0]
        assert abs(float(query_vec @ doc_vec) - hit[field]) < 1e-4, mode


def test_batch_queries_keep_order(client: TestClient) -> None:
    data = search(client, {"queries": ["who won the football final", "programming languages"],
                           "top_k": 2})
    results = data["results"]
    assert [r["hits"][0]["id"] for r in results] == ["sport-1", "tech-1"]
    assert all(len(r["hits"]) == 2 and r["truncated"] is False for r in results)


def test_top_k_larger_than_collection(client: TestClient) -> None:
    data = search(client, {"query": "anything", "top_k": 1000})
    assert len(data["hits"]) == 8
    assert len({h["id"] for h in data["hits"]}) == 8


def test_get_search_convenience(client: TestClient) -> None:
    response = client.get("/search", params={"q": "galaxy photos", "collection": "docs", "top_k": 2})
    assert response.status_code == 200
    assert response.json()["hits"][0]["id"] == "space-1"
    default = client.get("/search", params={"q": "galaxy photos"})  # default_collection=docs
    assert default.json()["hits"][0]["id"] == "space-1"


def test_filters(client: TestClient) -> None:
    def ids(filter_: dict[str, object]) -> set[str]:
        data = search(client, {"query": "something", "top_k": 100, "filter": filter_})
        return {h["id"] for h in data["hits"]}

    assert ids({"topic": "sport"}) == {"sport-1", "sport-2"}
    assert ids({"topic": ["sport", "tech"]}) == {"sport-1", "sport-2", "tech-1", "tech-2"}
    assert ids({"featured": True, "lang": "en"}) == {"bake-1", "sport-1", "tech-1"}
    assert ids({"year": 2022}) == {"sport-1", "space-1"}
    assert ids({"topic": "nothing-like-this"}) == set()


def test_filter_keeps_semantic_order(client: TestClient) -> None:
    data = search(client, {"query": "cookies and bread", "top_k": 2, "filter": {"topic": "cooking"}})
    assert [h["id"] for h in data["hits"]] == ["bake-2", "bake-1"] or \
        [h["id"] for h in data["hits"]] == ["bake-1", "bake-2"]
    scores = [h["score"] for h in data["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_long_query_is_truncated_and_reported(client: TestClient) -> None:
    data = search(client, {"query": "bread " * 400, "top_k": 1})
    assert data["truncated"] is True
    assert data["hits"][0]["id"] == "bake-1"


def test_collections_listing_and_description(client: TestClient) -> None:
    listing = client.get("/collections").json()
    assert listing == {"collections": [{"name": "docs", "kind": "documents",
                                        "model": "all-MiniLM-L6-v2", "count": 8,
                                        "passages": None, "error": None}]}
    info = client.get("/collections/docs").json()
    assert info["model"] == {"name": "all-MiniLM-L6-v2", "dimension": 384, "max_length": 256,
                             "normalized": True}
    assert info["count"] == 8
    assert info["generation"] == 1
    assert info["fields"] == ["featured", "lang", "topic", "year"]


def test_openapi_and_docs_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/collections/{name}/search" in schema["paths"]
    assert client.get("/docs").status_code == 200

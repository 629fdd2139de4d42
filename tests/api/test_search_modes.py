"""Search modes over HTTP: dense, lexical and hybrid on a real MiniLM collection."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def search(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/collections/docs/search", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_each_mode_reports_itself_and_its_channel_scores(client: TestClient) -> None:
    dense = search(client, {"query": "making bread in my kitchen", "top_k": 3, "mode": "dense"})
    assert dense["mode"] == "dense" and dense["hits"][0]["id"] == "bake-1"
    assert all(h["score"] == h["dense_score"] and h["lexical_score"] is None for h in dense["hits"])

    lexical = search(client, {"query": "sourdough starter", "top_k": 3, "mode": "lexical"})
    assert lexical["mode"] == "lexical"
    assert [h["id"] for h in lexical["hits"]] == ["bake-1"]  # the only text with those words
    assert lexical["hits"][0]["lexical_score"] == lexical["hits"][0]["score"] > 0

    hybrid = search(client, {"query": "sourdough bread", "top_k": 3, "mode": "hybrid"})
    assert hybrid["mode"] == "hybrid" and hybrid["hits"][0]["id"] == "bake-1"
    top = hybrid["hits"][0]
    assert top["dense_score"] > 0.3 and top["lexical_score"] > 0


def test_lexical_mode_finds_chinese_an_english_model_cannot(client: TestClient) -> None:
    # MiniLM knows no Chinese; character bigrams match 天气 and 公园 anyway.
    lexical = search(client, {"query": "天气 公园", "top_k": 1, "mode": "lexical"})
    assert [h["id"] for h in lexical["hits"]] == ["zh-1"]
    hybrid = search(client, {"query": "天气 公园", "top_k": 1, "mode": "hybrid"})
    assert [h["id"] for h in hybrid["hits"]] == ["zh-1"]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_filters_mean_the_same_in_every_mode(client: TestClient, mode: str) -> None:
    body = {"query": "bread cookies football python", "top_k": 10, "mode": mode}
    filtered = search(client, {**body, "filter": {"topic": "cooking", "featured": True}})
    assert [h["id"] for h in filtered["hits"]] == ["bake-1"]
    years = search(client, {**body, "filter": {"year": [2019, 2022]}})
    assert {h["id"] for h in years["hits"]} <= {"bake-2", "sport-1", "space-1"}
    assert all(h["metadata"]["year"] in (2019, 2022) for h in years["hits"])
    unknown = client.post("/collections/docs/search", json={**body, "filter": {"colour": "red"}})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_filter_field"


def test_fusion_settings_change_the_hybrid_ranking_predictably(client: TestClient) -> None:
    body = {"query": "GPUs for deep learning", "top_k": 8, "mode": "hybrid"}
    only_dense = search(client, {**body, "fusion": "alpha", "alpha": 1.0})
    dense = search(client, {"query": body["query"], "top_k": 8, "mode": "dense"})
    assert [h["id"] for h in only_dense["hits"]][:3] == [h["id"] for h in dense["hits"]][:3]
    only_lexical = search(client, {**body, "fusion": "alpha", "alpha": 0.0})
    assert only_lexical["hits"][0]["id"] == "tech-2"
    rrf = search(client, {**body, "fusion": "rrf"})
    assert rrf["hits"][0]["id"] == "tech-2"


def test_get_search_takes_a_mode(client: TestClient) -> None:
    response = client.get("/search", params={"q": "marathon", "mode": "lexical"})
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "lexical"
    assert [h["id"] for h in response.json()["hits"]] == ["sport-2"]


@pytest.mark.parametrize("body, field", [
    ({"query": "x", "mode": "semantic"}, "mode"),
    ({"query": "x", "mode": "hybrid", "fusion": "max"}, "fusion"),
    ({"query": "x", "mode": "hybrid", "alpha": 1.5}, "alpha"),
    ({"query": "x", "mode": "hybrid", "alpha": "high"}, "alpha"),
])
def test_bad_mode_settings_are_422_naming_the_field(client: TestClient, body: dict[str, Any],
                                                    field: str) -> None:
    response = client.post("/collections/docs/search", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_a_query_with_no_words_finds_nothing_lexically(client: TestClient) -> None:
    data = search(client, {"query": "?!…", "top_k": 5, "mode": "lexical"})
    assert data["hits"] == []

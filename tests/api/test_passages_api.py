"""Passages over HTTP: documents answer with their best passage; counts; chunk options."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.test_errors import assert_error
from tests.indexer.test_passages_index import long_doc

TEXTS = {f"r{n}": long_doc(n) for n in range(10)}
DOCS = [{"id": k, "text": v, "metadata": {"n": i}} for i, (k, v) in enumerate(TEXTS.items())]


@pytest.fixture
def reports(client: TestClient) -> TestClient:
    response = client.post("/collections/reports/documents",
                           json={"documents": DOCS, "chunk_tokens": 24, "chunk_overlap": 6})
    assert response.status_code == 200, response.text
    assert (response.json()["added"], response.json()["truncated"]) == (10, 0)
    return client


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_top_5_is_5_documents_each_with_its_best_passage(reports: TestClient, mode: str) -> None:
    response = reports.post("/collections/reports/search",
                            json={"query": "bees communicate by dancing", "top_k": 5, "mode": mode})
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 5 == len({hit["id"] for hit in hits})
    for hit in hits:
        passage = hit["passage"]
        assert hit["text"] == TEXTS[hit["id"]]
        assert hit["text"][passage["start"]:passage["end"]] == passage["text"]
        assert "bees communicate by dancing" in passage["text"]


def test_filters_apply_to_document_metadata(reports: TestClient) -> None:
    response = reports.post("/collections/reports/search",
                            json={"query": "glaciers", "top_k": 5, "filter": {"n": [2, 7]}})
    assert sorted(hit["id"] for hit in response.json()["hits"]) == ["r2", "r7"]


def test_counts_report_documents_and_passages_and_get_returns_the_document(
        reports: TestClient) -> None:
    info = reports.get("/collections/reports").json()
    assert info["count"] == 10 and info["passages"] > 20
    assert info["chunking"] == {"tokens": 24, "overlap": 6}
    listed = {c["name"]: c for c in reports.get("/collections").json()["collections"]}
    assert (listed["reports"]["count"], listed["reports"]["passages"]) == (10, info["passages"])
    assert listed["docs"]["passages"] is None  # a collection without passages, as before
    assert reports.get("/collections/reports/documents/r4").json()["text"] == TEXTS["r4"]


def test_shortening_and_deleting_over_http(reports: TestClient) -> None:
    before = reports.get("/collections/reports").json()["passages"]
    shorter = {"id": "r0", "text": "Report 0 is short now.", "metadata": {"n": 0}}
    assert reports.post("/collections/reports/documents", json={"documents": [shorter]}).status_code == 200
    after = reports.get("/collections/reports").json()
    assert after["count"] == 10 and after["passages"] < before
    assert reports.delete("/collections/reports/documents/r0").status_code == 200
    gone = reports.get("/collections/reports").json()
    assert (gone["count"], gone["passages"]) == (9, after["passages"] - 1)


def test_chunk_options_that_differ_from_the_collection_are_a_422(reports: TestClient) -> None:
    response = reports.post("/collections/reports/documents",
                            json={"documents": DOCS[:1], "no_chunk": True})
    assert_error(response, 422, "invalid_chunking")
    assert "stores passages of 24 tokens" in response.json()["error"]["message"]
    response = reports.post("/collections/other/documents",
                            json={"documents": DOCS[:1], "chunk_tokens": 1000})
    assert_error(response, 422, "invalid_chunking")
    assert reports.get("/collections/other").status_code == 404


def test_a_collection_without_passages_answers_without_a_passage(client: TestClient) -> None:
    hits = client.post("/collections/docs/search", json={"query": "bread", "top_k": 2}).json()["hits"]
    assert hits and all(hit["passage"] is None for hit in hits)

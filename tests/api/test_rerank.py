"""Rerank endpoints (Cohere / Jina and TEI shapes) and `rerank` in search, with the real reranker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cohere
import pytest
from fastapi.testclient import TestClient

from indexer.encoding import Encoder
from indexer.rerank import relevance
from search_api.config import ApiSettings
from search_api.services.reranking import RerankerRegistry, RerankService, RerankSpec
from storage import Hit
from storage.records import PassageSpan
from tests.conftest import make_client

QUERY = "How many people live in Berlin?"
DOCS = ["New York City is famous for the Metropolitan Museum of Art.",
        "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 km2.",
        "Berlin is the capital of Germany."]


@pytest.fixture
def rclient(data_dir: Path, minilm: Encoder) -> Iterator[TestClient]:
    settings = ApiSettings(data_dir=data_dir, default_collection="docs", max_rerank_documents=8,
                           rerank_top_n=5, max_text_chars=2000)
    with make_client(settings, minilm) as test_client:
        yield test_client


def test_cohere_shape_orders_documents(rclient: TestClient) -> None:
    body = {"model": "ms-marco-MiniLM-L-12-v2", "query": QUERY, "top_n": 2,
            "documents": [DOCS[0], {"text": DOCS[1], "title": "ignored"}, DOCS[2]],
            "return_documents": True}
    reply = rclient.post("/v1/rerank", json=body)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["index"] for r in results] == [1, 2]
    assert 1 > results[0]["relevance_score"] > results[1]["relevance_score"] > 0
    assert results[0]["document"] == {"text": DOCS[1]} and results[0]["truncated"] is False
    plain = rclient.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).json()
    assert [r["index"] for r in plain["results"]] == [1, 2, 0]
    assert "document" not in plain["results"][0]
    assert plain["model"] == "ms-marco-MiniLM-L-12-v2"


def test_tei_shape(rclient: TestClient) -> None:
    reply = rclient.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert reply.status_code == 200, reply.text
    ranks = reply.json()
    assert [r["index"] for r in ranks] == [1, 2, 0]
    assert ranks[0]["text"] == DOCS[1] and 0 < ranks[-1]["score"] < ranks[0]["score"] < 1
    raw = rclient.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
    assert raw[0]["score"] > 5 and raw[-1]["score"] < -5 and "text" not in raw[0]
    long = ["a " * 900]  # 900 tokens, under max_text_chars
    cut = rclient.post("/rerank", json={"query": QUERY, "texts": long})
    assert cut.status_code == 200 and cut.headers["x-truncated"] == "0"
    refused = rclient.post("/rerank", json={"query": QUERY, "texts": long, "truncate": False})
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "input_too_long"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"query": " ", "documents": DOCS}, 400, "empty_query"),
    ({"query": QUERY, "documents": []}, 400, "empty_text"),
    ({"query": QUERY, "documents": ["a", "\u200b"]}, 400, "empty_text"),
    ({"query": QUERY, "documents": ["d"] * 9}, 400, "limit_exceeded"),
    ({"query": QUERY, "documents": ["x" * 2001]}, 400, "limit_exceeded"),
    ({"query": "q" * 2001, "documents": DOCS}, 400, "limit_exceeded"),
    ({"query": QUERY, "documents": DOCS, "model": "rerank-v3.5"}, 400, "unknown_reranker"),
    ({"query": QUERY, "documents": DOCS, "model": "/tmp"}, 400, "unknown_reranker"),
    ({"query": QUERY, "documents": DOCS, "model": "~root"}, 400, "unknown_reranker"),
    ({"query": QUERY, "documents": DOCS, "top_n": 0}, 422, "invalid_request"),
    ({"query": QUERY, "documents": DOCS, "rank_fields": ["title"]}, 422, "invalid_request"),
    ({"query": QUERY, "documents": [{"title": "no text"}]}, 422, "invalid_request"),
    ({"query": QUERY}, 422, "invalid_request"),
])
def test_bad_input_is_a_clear_4xx(rclient: TestClient, body: dict[str, object], status: int,
                                  code: str) -> None:
    reply = rclient.post("/v1/rerank", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert reply.json()["error"]["message"]


def test_a_path_is_never_loaded(rclient: TestClient, tmp_path: Path) -> None:
    reply = rclient.post("/v1/rerank", json={"query": QUERY, "documents": DOCS,
                                             "model": str(tmp_path)})
    assert reply.status_code == 400 and "not available" in reply.json()["error"]["message"]
    services = rclient.app.state.services  # type: ignore[attr-defined]
    assert services.reranking.rerankers.loaded() == []


def test_search_reranks_the_fused_top_n(rclient: TestClient) -> None:
    body = {"query": "baking bread at home", "top_k": 5}
    plain = rclient.post("/collections/docs/search", json=body).json()["hits"]
    assert all(h["rerank_score"] is None for h in plain)
    reranked = rclient.post("/collections/docs/search",
                            json={**body, "rerank": {"top_n": 3, "fusion": "none"}}).json()["hits"]
    assert {h["id"] for h in reranked[:3]} == {h["id"] for h in plain[:3]}
    scores = [h["rerank_score"] for h in reranked]
    assert scores[3:] == [None, None] and scores[:3] == sorted(scores[:3], reverse=True)
    assert [h["id"] for h in reranked[3:]] == [h["id"] for h in plain[3:]]
    assert reranked[0]["id"] == "bake-1" and reranked[0]["rerank_truncated"] is False
    wide = rclient.post("/collections/docs/search", json={**body, "top_k": 2, "rerank": True})
    hits = wide.json()["hits"]  # default fusion: weighted, the first stage's order dominates
    assert len(hits) == 2 and all(h["rerank_score"] is not None for h in hits)
    got = rclient.get("/search", params={"q": "baking bread at home", "rerank": "true"}).json()
    assert got["hits"][0]["id"] == "bake-1" and got["hits"][0]["rerank_score"] > 0.5


def test_search_rerank_fusions(rclient: TestClient) -> None:
    body = {"query": "baking bread at home", "top_k": 5}
    plain = [h["id"] for h in rclient.post("/collections/docs/search", json=body).json()["hits"]]
    kept = rclient.post("/collections/docs/search", json={
        **body, "rerank": {"top_n": 5, "fusion": "weighted", "weight": 0.0}}).json()["hits"]
    assert [h["id"] for h in kept] == plain and all(h["rerank_score"] is not None for h in kept)
    alone = rclient.post("/collections/docs/search", json={
        **body, "rerank": {"top_n": 5, "fusion": "weighted", "weight": 1.0}}).json()["hits"]
    scores = [h["rerank_score"] for h in alone]
    assert scores == sorted(scores, reverse=True)
    default = rclient.post("/collections/docs/search", json={**body, "rerank": True}).json()["hits"]
    explicit = rclient.post("/collections/docs/search", json={**body, "rerank": {
        "fusion": "weighted", "weight": 0.5, "text": "document"}}).json()["hits"]
    assert default == explicit
    fused = rclient.post("/collections/docs/search", json={
        **body, "rerank": {"top_n": 5, "fusion": "rrf"}}).json()["hits"]
    assert sorted(h["id"] for h in fused) == sorted(plain)


def test_rerank_reads_the_best_passage_when_asked(data_dir: Path) -> None:
    settings = ApiSettings(data_dir=data_dir, rerank_fusion="none")
    service = RerankService(settings, RerankerRegistry(settings))
    noise = "Cars need fuel and regular maintenance. " * 40
    text = noise + DOCS[1]
    hits = [Hit(doc_id="a", score=0.9, text=text, metadata={},
                passage=PassageSpan(index=1, start=len(noise), end=len(text))),
            Hit(doc_id="b", score=0.8, text=DOCS[2], metadata={})]
    reranker = service.rerankers.get()
    for which, read in (("passage", DOCS[1]), ("document", text)):
        out = service.rerank_hits(QUERY, hits, RerankSpec(text=which), 2)
        expected = float(relevance(reranker.score(QUERY, [read]).scores)[0])
        got = out.scores[[h.doc_id for h in out.hits].index("a")]
        assert got == pytest.approx(expected, abs=1e-6)
    assert service.rerank_hits(QUERY, hits, RerankSpec(text="passage"), 2).hits[0].doc_id == "a"


@pytest.mark.parametrize(("rerank", "code"), [
    ({"fusion": "mean"}, "invalid_request"), ({"weight": 2}, "invalid_request"),
    ({"text": "title"}, "invalid_request"),
    ({"top_n": 9}, "limit_exceeded"), ({"model": "/tmp"}, "unknown_reranker"),
    ({"top_n": 0}, "invalid_request"), ("yes", "invalid_request"), ({"depth": 3}, "invalid_request"),
])
def test_search_rerank_errors(rclient: TestClient, rerank: object, code: str) -> None:
    reply = rclient.post("/collections/docs/search", json={"query": "bread", "rerank": rerank})
    assert reply.json()["error"]["code"] == code
    batch = rclient.post("/collections/docs/search",
                         json={"queries": ["a", "b", "c"], "rerank": {"top_n": 3}})
    assert batch.status_code == 400 and "SEMSEARCH_MAX_RERANK_DOCUMENTS" in batch.text


def test_cohere_clients_work_unmodified(server_url: str) -> None:
    """The official client, pointed at the service by base URL only (v1 and v2 paths)."""
    v1 = cohere.Client(api_key="unused", base_url=server_url, timeout=120)
    answer = v1.rerank(model="ms-marco-MiniLM-L-12-v2", query=QUERY, documents=DOCS, top_n=2,
                       return_documents=True)
    assert [r.index for r in answer.results] == [1, 2]
    assert answer.results[0].document is not None and answer.results[0].document.text == DOCS[1]
    assert 0 < answer.results[1].relevance_score < answer.results[0].relevance_score < 1
    v2 = cohere.ClientV2(api_key="unused", base_url=server_url, timeout=120)
    again = v2.rerank(model="cross-encoder/ms-marco-MiniLM-L-12-v2", query=QUERY, documents=DOCS)
    assert [r.index for r in again.results] == [1, 2, 0]
    with pytest.raises(cohere.errors.BadRequestError):
        v2.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS)

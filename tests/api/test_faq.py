"""POST /faq/{name}/match with real models: English (MiniLM) and Chinese (multilingual-e5-small) FAQs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.encoding import Encoder
from indexer.faq.build import calibrate_faq, import_faq
from indexer.faq.files import read_faq, read_labelled
from indexer.pipeline import index_documents, open_collection
from search_api.config import ApiSettings
from search_api.main import create_app
from search_api.services.faq import FaqMatcher
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from storage import Collection
from storage.faiss.backend import FaissBackend
from storage.faq_store import NotAnFaq
from tests.api.test_errors import assert_error
from tests.conftest import DATA, demo_documents

FAQ_DIR = DATA / "faq"
UNRELATED_EN = "What is the capital of Australia?"
UNRELATED_ZH = "长城有多长"


def _calibrate(data_dir: Path, name: str, encoder: Encoder, labelled: str) -> None:
    collection = Collection.open(data_dir, name)
    try:
        calibrate_faq(collection, encoder, read_labelled(FAQ_DIR / labelled))
    finally:
        collection.close()


@pytest.fixture(scope="module")
def faq_dir(tmp_path_factory: pytest.TempPathFactory, minilm: Encoder, e5: Encoder) -> Path:
    """en (calibrated), en_raw (default threshold 0.0), zh (calibrated), docs (not an FAQ)."""
    data_dir = tmp_path_factory.mktemp("faq-data")
    english = read_faq(FAQ_DIR / "support_en.yaml")
    for name in ("en", "en_raw"):
        import_faq(FaissBackend(data_dir), name, minilm, english, default_threshold=0.0)
    _calibrate(data_dir, "en", minilm, "labelled_en.jsonl")
    import_faq(FaissBackend(data_dir), "zh", e5, read_faq(FAQ_DIR / "support_zh.csv"), default_threshold=0.0)
    _calibrate(data_dir, "zh", e5, "labelled_zh.csv")
    docs = open_collection(data_dir, "docs", minilm)
    index_documents(docs, minilm, demo_documents())
    docs.close()
    return data_dir


@pytest.fixture(scope="module")
def faq_client(faq_dir: Path, minilm: Encoder, e5: Encoder) -> Iterator[TestClient]:
    app = create_app(ApiSettings(data_dir=faq_dir), encoders={minilm.name: minilm, e5.name: e5})
    with TestClient(app) as client:
        yield client


def _match(client: TestClient, name: str, **body: object) -> dict[str, object]:
    response = client.post(f"/faq/{name}/match", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


@pytest.mark.parametrize(
    ("query", "intent"),
    [
        ("I have forgotten my password, how can I set a new one?", "reset_password"),
        ("Until what time are you open this evening?", "opening_hours"),
        ("The parcel still hasn't come, how long does shipping take?", "shipping_time"),
    ],
)
def test_english_paraphrase_matches(faq_client: TestClient, query: str, intent: str) -> None:
    result = _match(faq_client, "en", query=query)
    assert result["matched"] is True and result["intent"] == intent
    assert isinstance(result["answer"], str) and result["answer"]
    candidates = result["candidates"]
    assert isinstance(candidates, list) and len(candidates) == 3
    assert candidates[0]["intent"] == intent and candidates[0]["score"] == result["score"]
    assert len({c["intent"] for c in candidates}) == 3  # one row per intent, its best question
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)


def test_unrelated_query_is_not_matched_after_calibration(faq_client: TestClient) -> None:
    result = _match(faq_client, "en", query=UNRELATED_EN, top_k=5)
    assert result["matched"] is False and result["intent"] is None and result["answer"] is None
    assert isinstance(result["score"], float) and result["score"] < result["threshold"]  # type: ignore[operator]
    assert len(result["candidates"]) == 5  # type: ignore[arg-type]
    # The uncalibrated copy (threshold 0.0) answers anything with a positive score.
    raw = _match(faq_client, "en_raw", query=UNRELATED_EN)
    assert raw["threshold"] == 0.0 and raw["matched"] is (raw["score"] >= 0.0)  # type: ignore[operator]


def test_threshold_override(faq_client: TestClient) -> None:
    query = "How do I get a refund for my order?"
    calibrated = _match(faq_client, "en", query=query)
    assert calibrated["matched"] is True and calibrated["intent"] == "refund"
    strict = _match(faq_client, "en", query=query, threshold=0.99)
    assert strict["matched"] is False and strict["threshold"] == 0.99 and strict["intent"] is None
    assert strict["candidates"][0]["intent"] == "refund"  # type: ignore[index]
    loose = _match(faq_client, "en", query=UNRELATED_EN, threshold=-1.0)
    assert loose["matched"] is True and loose["intent"] is not None


@pytest.mark.parametrize(
    ("query", "intent"),
    [("密码忘记了，怎么重新设置？", "修改密码"), ("我的快递怎么还没到，一般要几天", "快递"),
     ("不想要了，可以退款吗", "退款")],
)
def test_chinese_paraphrase_matches(faq_client: TestClient, query: str, intent: str) -> None:
    result = _match(faq_client, "zh", query=query)
    assert result["matched"] is True and result["intent"] == intent


def test_chinese_unrelated_query_is_not_matched(faq_client: TestClient) -> None:
    result = _match(faq_client, "zh", query=UNRELATED_ZH)
    assert result["matched"] is False and result["intent"] is None
    assert result["candidates"]


@pytest.mark.parametrize(
    ("name", "body", "status", "code", "words"),
    [
        ("en", {"query": ""}, 400, "empty_query", ["empty"]),
        ("en", {"query": "  \n"}, 400, "empty_query", ["empty"]),
        ("en", {"query": "\u200b\ufeff"}, 400, "empty_query", ["empty"]),
        ("en", {}, 422, "invalid_request", ["query"]),
        ("en", {"query": 5}, 422, "invalid_request", ["query"]),
        ("en", {"query": "x", "top_k": 0}, 422, "invalid_request", ["top_k"]),
        ("en", {"query": "x", "top_k": 51}, 400, "limit_exceeded", ["top_k", "50"]),
        ("en", {"query": "x", "top_k": "3"}, 422, "invalid_request", ["top_k"]),
        ("en", {"query": "x", "threshold": -1.01}, 422, "invalid_request", ["threshold"]),
        ("en", {"query": "x", "threshold": "high"}, 422, "invalid_request", ["threshold"]),
        ("en", {"query": "x", "k": 3}, 422, "invalid_request", ["k"]),
        ("en", {"query": "x" * 100_001}, 400, "limit_exceeded", ["characters"]),
        ("nope", {"query": "x"}, 404, "collection_not_found", ["nope"]),
        ("docs", {"query": "x"}, 400, "not_an_faq", ["'docs'", "not an FAQ", "faq import"]),
        ("bad$name", {"query": "x"}, 400, "invalid_collection_name", ["bad$name"]),
    ],
)
def test_bad_match_requests(faq_client: TestClient, name: str, body: dict[str, object],
                            status: int, code: str, words: list[str]) -> None:
    assert_error(faq_client.post(f"/faq/{name}/match", json=body), status, code, *words)


def test_listing_marks_which_collections_are_faqs(faq_client: TestClient) -> None:
    """The web page's FAQ picker lists only these; 'docs' would answer 400 not_an_faq."""
    listing = faq_client.get("/collections").json()["collections"]
    assert {c["name"]: c["kind"] for c in listing} == {
        "en": "faq", "en_raw": "faq", "zh": "faq", "docs": "documents"}
    assert_error(faq_client.post("/faq/docs/match", json={"query": "hello"}), 400, "not_an_faq")


def test_matcher_service_without_http(faq_dir: Path, minilm: Encoder) -> None:
    settings = ApiSettings(data_dir=faq_dir)
    collections = CollectionRegistry(faq_dir)
    encoders = EncoderRegistry(allow_download=False, trust_remote_code=False,
                               preloaded={minilm.name: minilm})
    matcher = FaqMatcher(settings, collections, encoders)
    try:
        found = matcher.match("en", "Can I cancel what I ordered?", top_k=1)
        assert found.matched and found.intent == "cancel_order" and len(found.candidates) == 1
        assert found.candidates[0].question in read_faq(FAQ_DIR / "support_en.yaml")[4].questions
        with pytest.raises(NotAnFaq):
            matcher.match("docs", "x")
    finally:
        collections.close()


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_chinese_faq_matches_in_every_mode(faq_client: TestClient, mode: str) -> None:
    result = _match(faq_client, "zh", query="我忘记密码了，怎么重新设置密码", mode=mode, threshold=-1.0)
    assert result["mode"] == mode
    assert result["intent"] == "修改密码", result
    candidates = result["candidates"]
    assert isinstance(candidates, list) and candidates[0]["intent"] == "修改密码"


def test_faq_mode_defaults_to_the_calibrated_one(faq_dir: Path, minilm: Encoder) -> None:
    import_faq(FaissBackend(faq_dir), "en_lexical", minilm, read_faq(FAQ_DIR / "support_en.yaml"),
               default_threshold=0.0)
    collection = Collection.open(faq_dir, "en_lexical")
    try:
        result = calibrate_faq(collection, minilm, read_labelled(FAQ_DIR / "labelled_en.jsonl"),
                               mode="lexical")
    finally:
        collection.close()
    assert result.threshold > 0  # a BM25 threshold
    with TestClient(create_app(ApiSettings(data_dir=faq_dir), encoders={minilm.name: minilm})) as client:
        found = _match(client, "en_lexical", query="How do I get a refund for my order?")
        assert found["mode"] == "lexical" and found["intent"] == "refund"
        assert found["threshold"] == pytest.approx(result.threshold)
        unrelated = _match(client, "en_lexical", query="zebra giraffe savanna")
        assert unrelated["matched"] is False and unrelated["candidates"] == []
        dense = _match(client, "en_lexical", query="How do I get a refund for my order?", mode="dense")
        assert dense["mode"] == "dense"

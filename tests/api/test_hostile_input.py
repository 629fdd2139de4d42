"""Inputs that once caused 500s or silent loss: each now gets a clear 4xx or works."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient

from indexer.models import SourceDocument
from indexer.pipeline import index_documents, open_collection
from search_api.config import ApiSettings
from tests.api.test_errors import assert_error
from tests.conftest import make_client
from tests.servers import running_server

SEARCH = "/collections/docs/search"
DOCS = "/collections/docs/documents"


def test_metadata_that_cannot_be_stored_is_refused(client: TestClient) -> None:
    nan = b'{"documents": [{"id": "n", "text": "t", "metadata": {"k": NaN}}]}'
    response = client.post(DOCS, content=nan, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request", "not a JSON number")
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    assert_error(client.post(DOCS, json={"documents": [{"id": "d", "text": "t", "metadata": deep}]}),
                 422, "invalid_request", "deeper")
    assert_error(client.post(DOCS, json={"documents": [{"id": "b", "text": "t",
                                                        "metadata": {"big": 10**30}}]}),
                 422, "invalid_request", "64 bits")
    assert client.post(SEARCH, json={"query": "x", "filter": {"topic": "sport"}}).status_code == 200


def test_invalid_unicode_is_refused(client: TestClient) -> None:
    def post(url: str, raw: str):  # type: ignore[no-untyped-def]  # JSON escapes of lone surrogates
        return client.post(url, content=raw.encode(), headers={"content-type": "application/json"})

    assert_error(post(SEARCH, '{"query": "\\ud800"}'), 422, "invalid_request", "Unicode")
    assert_error(post(SEARCH, '{"queries": ["ok", "a\\udfffb"]}'), 422, "invalid_request")
    assert_error(post(DOCS, '{"documents": [{"id": "u", "text": "\\ud800x"}]}'), 422,
                 "invalid_request", "Unicode")
    assert client.get("/collections/docs").json()["count"] == 8


def test_awkward_filters(client: TestClient) -> None:
    assert_error(client.post(SEARCH, json={"query": "x", "filter": {"year": 10**30}}), 400,
                 "invalid_filter", "64 bits")
    many = list(range(2000))
    assert_error(client.post(SEARCH, json={"query": "x", "filter": {"year": many}}), 400,
                 "invalid_filter", "256")
    response = client.post(SEARCH, json={"query": "x", "top_k": 10,
                                         "filter": {"year": list(range(2000, 2200))}})
    assert response.status_code == 200
    assert {h["id"] for h in response.json()["hits"]} == {
        "bake-1", "bake-2", "sport-1", "sport-2", "tech-1", "tech-2", "space-1", "zh-1"}


def test_blank_ids_and_boolean_top_k(client: TestClient) -> None:
    assert_error(client.post(DOCS, json={"documents": [{"id": "  ", "text": "t"}]}), 422,
                 "invalid_request", "blank")
    assert_error(client.post(SEARCH, json={"query": "x", "top_k": True}), 422, "invalid_request",
                 "top_k")


def test_ids_with_slashes_and_spaces(client: TestClient) -> None:
    response = client.post(DOCS, json={"documents": [{"id": "a/b c", "text": "Slash in the id"}]})
    assert response.status_code == 200, response.text
    assert client.get("/collections/docs/documents/a%2Fb%20c").json()["id"] == "a/b c"
    assert client.get("/collections/docs/documents/a/b c").json()["text"] == "Slash in the id"
    assert client.delete("/collections/docs/documents/a/b c").status_code == 200
    assert_error(client.get("/collections/docs/documents/a/b c"), 404, "document_not_found")


def test_a_broken_collection_does_not_take_the_service_down(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    broken = data_dir / "broken"
    broken.mkdir()
    (broken / "metadata.db").write_bytes(b"this is not sqlite" * 100)
    with make_client(ApiSettings(data_dir=data_dir), minilm) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "broken" in ready.json()["errors"]
        listing = {c["name"]: c for c in client.get("/collections").json()["collections"]}
        assert listing["docs"]["count"] == 8
        assert listing["broken"]["count"] is None and "unreadable" in listing["broken"]["error"]
        assert client.post(SEARCH, json={"query": "bread"}).status_code == 200
        assert_error(client.post("/collections/broken/search", json={"query": "x"}), 503,
                     "collection_unavailable", "unreadable")


def test_recreated_collection_is_reopened_not_written_blind(client: TestClient, data_dir: Path,
                                                            e5) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/collections/docs").json()["count"] == 8
    shutil.rmtree(data_dir / "docs")
    recreated = open_collection(data_dir, "docs", e5)  # another process, another model
    index_documents(recreated, e5, [SourceDocument(doc_id="zh", text="新的文档")])
    recreated.close()
    info = client.get("/collections/docs").json()
    assert (info["model"]["name"], info["count"]) == ("multilingual-e5-small", 1)
    response = client.post(DOCS, json={"documents": [{"id": "x", "text": "另一个文档"}]})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2


def test_listing_counts_are_fresh(client: TestClient, data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    other = open_collection(data_dir, "docs", minilm)
    index_documents(other, minilm, [SourceDocument(doc_id="new", text="Fresh document")])
    other.close()
    assert client.get("/collections").json()["collections"][0]["count"] == 9


def test_body_too_large_keeps_cors_headers(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, max_body_bytes=1024,
                           cors_origins="http://app.example")  # type: ignore[arg-type]
    with make_client(settings, minilm) as client:
        response = client.post(SEARCH, json={"query": "x" * 5000},
                               headers={"Origin": "http://app.example"})
        assert_error(response, 413, "body_too_large")
        assert response.headers["access-control-allow-origin"] == "http://app.example"


def test_unusable_model_names(client: TestClient) -> None:
    raw = b'{"query": "x", "model": "\\ud800"}'
    response = client.post(SEARCH, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request", "Unicode")
    assert_error(client.post(SEARCH, json={"query": "x", "model": "~nobody-such-user/m"}), 409,
                 "model_mismatch")
    # Client names never touch the filesystem: an existing and a missing user answer alike.
    answers = []
    for model in ("~root/m", "~nobody-such-user/m"):
        response = client.post("/collections/new/documents",
                               json={"documents": [{"id": "a", "text": "x"}], "model": model})
        assert_error(response, 400, "unknown_model", "is not available on this server")
        answers.append(response.json()["error"]["message"].replace(model, "M"))
    assert answers[0] == answers[1]


def test_invisible_text_counts_as_empty(client: TestClient) -> None:
    for blank in ("\u200b", "\ufeff \u200b", "\x00", " \t\n"):
        assert_error(client.post(SEARCH, json={"query": blank}), 400, "empty_query")
        assert_error(client.post(DOCS, json={"documents": [{"id": "z", "text": blank}]}), 400,
                     "empty_text", "documents[0]")


def test_ids_with_control_characters_can_be_read_and_deleted(client: TestClient) -> None:
    """Starlette's `path` parameter stops at a newline: such ids were stored but unreachable."""
    ids = ["line\nbreak", "cr\rlf\r\n", "tab\there", "nul\x00byte", "a/../b", "q?x#y", " pad "]
    docs = [{"id": doc_id, "text": f"Document {n}"} for n, doc_id in enumerate(ids)]
    assert client.post(DOCS, json={"documents": docs}).status_code == 200
    for n, doc_id in enumerate(ids):
        url = f"{DOCS}/{quote(doc_id, safe='')}"
        response = client.get(url)
        assert response.status_code == 200, (doc_id, response.text)
        assert response.json()["id"] == doc_id and response.json()["text"] == f"Document {n}"
        assert client.delete(url).json()["deleted"] == doc_id
        assert_error(client.get(url), 404, "document_not_found")
        assert_error(client.delete(url), 404, "document_not_found")
    assert client.get("/collections/docs").json()["count"] == 8


def test_ids_a_url_cannot_address_are_refused(client: TestClient) -> None:
    for doc_id in (".", ".."):
        assert_error(client.post(DOCS, json={"documents": [{"id": doc_id, "text": "t"}]}), 422,
                     "invalid_request", "dot segment")
    assert_error(client.post(DOCS, json={"documents": [{"id": "i" * 513, "text": "t"}]}), 422,
                 "invalid_request", "513 characters", "512")
    longest = "界" * 512  # 9 bytes each once percent-encoded: the longest URL an id needs
    assert client.post(DOCS, json={"documents": [{"id": longest, "text": "t"}]}).status_code == 200
    assert client.get(f"{DOCS}/{quote(longest, safe='')}").json()["id"] == longest
    assert client.get(f"{DOCS}/..%2Fx").status_code == 404  # a lookup, never a path outside


def test_ids_are_not_unicode_normalised(client: TestClient) -> None:
    """Ids are exact code point sequences: NFC and NFD spellings are two documents (docs/limits.md)."""
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    docs = [{"id": nfc, "text": "composed"}, {"id": nfd, "text": "decomposed"}]
    assert client.post(DOCS, json={"documents": docs}).json()["added"] == 2
    assert client.get(f"{DOCS}/{quote(nfc)}").json()["text"] == "composed"
    assert client.get(f"{DOCS}/{quote(nfd)}").json()["text"] == "decomposed"
    assert client.delete(f"{DOCS}/{quote(nfd)}").status_code == 200
    assert client.get(f"{DOCS}/{quote(nfc)}").status_code == 200


def test_ids_are_addressable_through_a_real_server(data_dir: Path) -> None:
    """uvicorn decodes a path once (TestClient twice, so '%' ids are tested here)."""
    ids = ["line\nbreak", "%41", "100% sure", "界" * 512]
    with running_server(data_dir) as base, httpx.Client(base_url=base, timeout=60) as http:
        docs = [{"id": doc_id, "text": "Addressable"} for doc_id in ids]
        assert http.post(DOCS, json={"documents": docs}).status_code == 200
        for doc_id in ids:
            url = f"{DOCS}/{quote(doc_id, safe='')}"
            assert http.get(url).json()["id"] == doc_id
            assert http.delete(url).status_code == 200
            assert http.get(url).json()["error"]["code"] == "document_not_found"

"""Every bad request gets a 4xx with {"error": {"code", "message"}}, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.config import ApiSettings
from tests.conftest import make_client

SEARCH = "/collections/docs/search"


def assert_error(response, status: int, code: str, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    for word in words:
        assert word in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"query": ""}, 400, "empty_query", ["empty"]),
        ({"query": "   \n"}, 400, "empty_query", ["empty"]),
        ({"queries": []}, 400, "empty_query", ["at least one"]),
        ({"queries": ["ok", ""]}, 400, "empty_query", ["queries[1]"]),
        ({"query": "x", "top_k": 0}, 422, "invalid_request", ["top_k"]),
        ({"query": "x", "top_k": 1001}, 400, "limit_exceeded", ["top_k", "1000"]),
        ({"query": "x", "top_k": "many"}, 422, "invalid_request", ["top_k"]),
        ({"query": 5}, 422, "invalid_request", ["query"]),
        ({}, 422, "invalid_request", ["exactly one"]),
        ({"query": "x", "queries": ["y"]}, 422, "invalid_request", ["exactly one"]),
        ({"query": "x", "topk": 3}, 422, "invalid_request", ["topk"]),
        ({"query": "x", "filter": {"colour": "red"}}, 400, "unknown_filter_field",
         ["colour", "topic"]),
        ({"query": "x", "filter": {"topic": {"$eq": "a"}}}, 400, "invalid_filter",
         ["'topic'", "string, number or boolean", "got an object"]),
        ({"query": "x", "filter": {"topic": ["a", {"b": 1}]}}, 400, "invalid_filter",
         ["'topic'", "got an object"]),
        ({"query": "x", "filter": {"topic": [["a"]]}}, 400, "invalid_filter",
         ["'topic'", "got a list"]),
        ({"query": "x", "filter": {"topic": None}}, 400, "invalid_filter", ["'topic'", "got null"]),
        ({"query": "x", "filter": ["topic", "a"]}, 400, "invalid_filter",
         ["JSON object", '{"topic": "a"}']),
        ({"query": "x", "filter": {"topic": []}}, 400, "invalid_filter", ["topic"]),
        ({"query": "x", "model": "multilingual-e5-small"}, 409, "model_mismatch",
         ["all-MiniLM-L6-v2"]),
    ],
)
def test_bad_search_bodies(client: TestClient, body: dict[str, object], status: int, code: str,
                           words: list[str]) -> None:
    assert_error(client.post(SEARCH, json=body), status, code, *words)


def test_filter_errors_name_no_validator_internals(client: TestClient) -> None:
    response = client.post(SEARCH, json={"query": "x", "filter": {"source": {"$in": ["a"]}}})
    assert_error(response, 400, "invalid_filter", "'source'", '{"source": ["a", "b"]}')
    assert "function-after" not in response.text and "_valid_unicode" not in response.text


def _json_routes(client: TestClient) -> list[str]:
    """Every route that reads a JSON body (from the OpenAPI schema), path parameters filled."""
    paths = client.get("/openapi.json").json()["paths"]
    return [path.replace("{name}", "docs") for path, operations in paths.items()
            for operation in operations.values()
            if "application/json" in operation.get("requestBody", {}).get("content", {})]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_declared_json_says_which_header_to_send(
        client: TestClient, content_type: str) -> None:
    """curl -d without -H sends a form content type: the error says what to add."""
    routes = _json_routes(client)
    assert {"/collections/docs/search", "/collections/docs/documents", "/similarity",
            "/v1/embeddings", "/faq/docs/match"} <= set(routes)
    for path in routes:
        response = client.post(path, content=b'{"query": "bread"}',
                               headers={"content-type": content_type})
        assert_error(response, 415, "unsupported_media_type", "Content-Type: application/json",
                     content_type.split(";")[0])
    assert client.get("/collections/docs").json()["count"] == 8


def test_a_body_without_a_content_type_says_which_header_to_send(client: TestClient) -> None:
    response = client.post(SEARCH, content=b'{"query": "bread", "top_k": 1}')
    assert_error(response, 415, "unsupported_media_type", "Content-Type: application/json",
                 "no Content-Type")
    for declared in ("application/json; charset=utf-8", "application/vnd.api+json"):
        ok = client.post(SEARCH, content=b'{"query": "bread", "top_k": 1}',
                         headers={"content-type": declared})
        assert ok.status_code == 200, ok.text
        assert ok.json()["hits"][0]["id"] == "bake-1"
    missing = client.post(SEARCH, headers={"content-type": "application/json"})
    assert_error(missing, 422, "invalid_request", "body")


def test_malformed_json(client: TestClient) -> None:
    response = client.post(SEARCH, content=b'{"query": "x",', headers={"content-type": "application/json"})
    assert_error(response, 400, "malformed_json", "not valid JSON")


def test_unknown_collection(client: TestClient) -> None:
    assert_error(client.post("/collections/nope/search", json={"query": "x"}), 404,
                 "collection_not_found", "nope", "docs")
    assert_error(client.get("/collections/nope"), 404, "collection_not_found")
    assert_error(client.get("/search", params={"q": "x", "collection": "nope"}), 404,
                 "collection_not_found")


def test_invalid_collection_name(client: TestClient) -> None:
    assert_error(client.post("/collections/.hidden/search", json={"query": "x"}), 400,
                 "invalid_collection_name")
    assert_error(client.post("/collections/bad name!/documents",
                             json={"documents": [{"id": "1", "text": "x"}]}), 400,
                 "invalid_collection_name", "letters, digits")
    traversal = client.post("/collections/..%2F..%2Fetc/documents",
                            json={"documents": [{"id": "1", "text": "x"}]})
    assert traversal.status_code in (400, 404)
    assert "error" in traversal.json()
    assert [c["name"] for c in client.get("/collections").json()["collections"]] == ["docs"]


def test_get_search_validation(client: TestClient) -> None:
    assert_error(client.get("/search"), 422, "invalid_request", "q")
    assert_error(client.get("/search", params={"q": " "}), 400, "empty_query")
    assert_error(client.get("/search", params={"q": "x", "top_k": 0}), 422, "invalid_request")


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/nothing-here"), 404, "not_found")
    assert_error(client.put(SEARCH, json={"query": "x"}), 405, "method_not_allowed")


def test_too_many_queries_and_long_text(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, max_queries=3, max_text_chars=50, max_top_k=5)
    with make_client(settings, minilm) as client:
        assert_error(client.post(SEARCH, json={"queries": ["a", "b", "c", "d"]}), 400,
                     "limit_exceeded", "SEMSEARCH_MAX_QUERIES", "3")
        assert_error(client.post(SEARCH, json={"query": "x" * 51}), 400, "limit_exceeded",
                     "SEMSEARCH_MAX_TEXT_CHARS", "50")
        assert_error(client.post(SEARCH, json={"query": "x", "top_k": 6}), 400, "limit_exceeded", "5")


def test_body_too_large(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, max_body_bytes=2048)
    with make_client(settings, minilm) as client:
        big = {"query": "x" * 4000}
        assert_error(client.post(SEARCH, json=big), 413, "body_too_large", "2048")

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b" " * 1000  # no Content-Length: counted while streaming

        response = client.post(SEARCH, content=chunks(), headers={"content-type": "application/json"})
        assert_error(response, 413, "body_too_large")
        assert client.post(SEARCH, json={"query": "bread"}).status_code == 200


def test_cors_is_configurable(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, cors_origins="http://app.example")  # type: ignore[arg-type]
    assert settings.cors_origins == ["http://app.example"]
    with make_client(settings, minilm) as client:
        preflight = client.options(SEARCH, headers={"Origin": "http://app.example",
                                                    "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        other = client.get("/healthz", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with make_client(ApiSettings(data_dir=data_dir), minilm) as client:
        response = client.get("/healthz", headers={"Origin": "http://app.example"})
        assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("url", [SEARCH, "/collections/docs/documents"])
def test_bodies_json_cannot_parse_get_documented_codes(client: TestClient, url: str) -> None:
    """FastAPI answers these with a bare 400 'There was an error parsing the body'."""
    headers = {"content-type": "application/json"}
    not_utf8 = client.post(url, content=b'{"query": "caf\xe9"}', headers=headers)
    assert_error(not_utf8, 400, "malformed_json", "not valid JSON", "UTF-8")
    deep = b'{"query": "x", "filter": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_error(client.post(url, content=deep, headers=headers), 422, "invalid_request",
                 "nested too deeply")
    assert client.get("/collections/docs").json()["count"] == 8


def test_error_messages_do_not_echo_unbounded_input(client: TestClient) -> None:
    huge_key = "k" * 100_000
    response = client.post(SEARCH, json={"query": "x", "filter": {huge_key: {"$eq": 1}}})
    assert_error(response, 400, "invalid_filter", "kkk...")
    assert len(response.text) < 1000  # the field name is cut to 100 characters
    response = client.post(SEARCH, json={"query": "x", "filter": {huge_key: 1}})
    assert_error(response, 400, "unknown_filter_field", "kkk...")
    assert len(response.text) < 1000

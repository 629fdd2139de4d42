"""Per-request work is bounded: metadata shape limits, distinct fields, short error messages."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from search_api.config import ApiSettings
from tests.api.test_errors import assert_error
from tests.conftest import make_client

SEARCH = "/collections/docs/search"
DOCS = "/collections/docs/documents"


def upsert(client: TestClient, metadata: dict[str, object], doc_id: str = "m"):  # type: ignore[no-untyped-def]
    return client.post(DOCS, json={"documents": [{"id": doc_id, "text": "Metadata limits",
                                                  "metadata": metadata}]})


def test_200000_metadata_keys_are_refused_in_a_short_message(client: TestClient) -> None:
    response = upsert(client, {f"k{n}": n for n in range(200_000)})
    assert_error(response, 400, "limit_exceeded", "documents[0]", "more than 256 keys",
                 "SEMSEARCH_MAX_METADATA_KEYS")
    assert len(response.text) < 300
    info = client.get("/collections/docs").json()
    assert info["count"] == 8 and len(info["fields"]) == 4  # nothing was stored


def test_keys_counted_at_every_level(client: TestClient) -> None:
    nested = {f"g{n}": {f"k{m}": m for m in range(50)} for n in range(6)}  # 306 keys, 6 fields
    assert_error(upsert(client, nested), 400, "limit_exceeded", "SEMSEARCH_MAX_METADATA_KEYS")
    assert upsert(client, {f"k{n}": n for n in range(256)}).status_code == 200


def test_key_length_and_metadata_bytes(client: TestClient) -> None:
    assert_error(upsert(client, {"k" * 257: 1}), 400, "limit_exceeded", "257 characters",
                 "SEMSEARCH_MAX_METADATA_KEY_CHARS")
    assert_error(upsert(client, {"blob": "x" * 70_000}), 400, "limit_exceeded",
                 "SEMSEARCH_MAX_METADATA_BYTES")
    assert upsert(client, {"k" * 256: "x" * 60_000}).status_code == 200


def test_limits_are_settings(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, max_metadata_keys=3, max_metadata_depth=2,
                           max_metadata_bytes=100, max_metadata_key_chars=5)
    with make_client(settings, minilm) as client:
        assert_error(upsert(client, {"a": 1, "b": 2, "c": 3, "d": 4}), 400, "limit_exceeded",
                     "SEMSEARCH_MAX_METADATA_KEYS")
        assert_error(upsert(client, {"a": {"b": [1]}}), 400, "limit_exceeded", "deeper than 2",
                     "SEMSEARCH_MAX_METADATA_DEPTH")
        assert_error(upsert(client, {"a": "x" * 100}), 400, "limit_exceeded",
                     "SEMSEARCH_MAX_METADATA_BYTES")
        assert_error(upsert(client, {"abcdef": 1}), 400, "limit_exceeded",
                     "SEMSEARCH_MAX_METADATA_KEY_CHARS")
        assert upsert(client, {"a": {"b": 1}, "c": "ok"}).status_code == 200


def test_distinct_fields_per_collection(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    with make_client(ApiSettings(data_dir=data_dir, max_fields=10), minilm) as client:
        assert upsert(client, {f"f{n}": n for n in range(6)}, "six").status_code == 200  # 4 + 6
        response = upsert(client, {"f0": 1, "new": 2}, "one-more")
        assert_error(response, 400, "limit_exceeded", "11 distinct metadata fields (1 new)",
                     "SEMSEARCH_MAX_FIELDS")
        info = client.get("/collections/docs").json()
        assert info["count"] == 9 and len(info["fields"]) == 10
        assert upsert(client, {"f0": 1, "topic": "x"}, "reuses").status_code == 200


def test_unknown_field_error_lists_a_bounded_sample(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    with make_client(ApiSettings(data_dir=data_dir, max_fields=2000), minilm) as client:
        for part in range(5):
            metadata = {f"field{part:02d}{n:03d}": n for n in range(250)}
            assert upsert(client, metadata, f"wide{part}").status_code == 200
        response = client.post(SEARCH, json={"query": "x", "filter": {"colour": "red"}})
        assert_error(response, 400, "unknown_filter_field", "colour", "and 1234 more")
        assert len(response.text) < 1000
        assert client.get("/collections/docs").json()["fields"][:2] == ["featured", "field00000"]
        hits = client.post(SEARCH, json={"query": "x", "filter": {"field04249": 249}}).json()["hits"]
        assert [h["id"] for h in hits] == ["wide4"]


def test_filters_naming_too_many_fields(client: TestClient) -> None:
    response = client.post(SEARCH, json={"query": "x", "filter": {f"f{n}": 1 for n in range(100)}})
    assert_error(response, 400, "invalid_filter", "100 fields", "64")

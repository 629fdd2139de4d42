"""Optional API key and the Prometheus /metrics endpoint."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from search_api.config import ApiSettings
from tests.api.test_errors import assert_error
from tests.conftest import make_client

SEARCH = "/collections/docs/search"


def test_api_key_required_when_set(data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, api_key="s3cret")  # type: ignore[arg-type]
    with make_client(settings, minilm) as client:
        missing = client.post(SEARCH, json={"query": "bread"})
        assert_error(missing, 401, "unauthorized", "Authorization: Bearer")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(client.post(SEARCH, json={"query": "bread"},
                                 headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        assert_error(client.get("/collections", headers={"Authorization": "s3cret"}), 401,
                     "unauthorized")
        ok = client.post(SEARCH, json={"query": "bread"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["hits"][0]["id"] == "bake-1"
        for open_path in ("/healthz", "/health", "/readyz", "/openapi.json"):
            assert client.get(open_path).status_code == 200, open_path
        assert_error(client.get("/metrics"), 401, "unauthorized")


def test_api_key_off_by_default(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post(SEARCH, json={"query": "bread"}).status_code == 200


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_requests_by_route_and_report_sizes(client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        assert client.post(SEARCH, json={"query": "bread"}).status_code == 200
    client.post(SEARCH, json={"query": ""})
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    route = "/collections/{name}/search"
    assert samples[("semsearch_http_requests_total",
                    (("method", "POST"), ("route", route), ("status", "200")))] == 3
    assert samples[("semsearch_http_requests_total",
                    (("method", "POST"), ("route", route), ("status", "400")))] == 1
    assert samples[("semsearch_http_requests_total",
                    (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("semsearch_http_request_duration_seconds_count",
                    (("method", "POST"), ("route", route)))] == 4
    assert samples[("semsearch_collection_documents", (("collection", "docs"),))] == 8
    encodes = (("kind", "query"), ("model", "all-MiniLM-L6-v2"))
    assert samples[("semsearch_encode_batch_size_count", encodes)] == 3  # the empty query is refused
    assert samples[("semsearch_encode_batch_size_sum", encodes)] == 3
    client.post(SEARCH, json={"queries": ["a", "b", "c", "d"]})
    samples = metric_samples(client.get("/metrics").text)
    assert samples[("semsearch_encode_batch_size_sum", encodes)] == 7
    assert samples[("semsearch_collection_generation", (("collection", "docs"),))] == 1


def test_api_key_scheme_is_case_insensitive_and_probes_work_behind_a_prefix(
        data_dir: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = ApiSettings(data_dir=data_dir, api_key="s3cret")  # type: ignore[arg-type]
    from fastapi.testclient import TestClient

    from search_api.main import create_app

    app = create_app(settings, encoders={minilm.name: minilm})
    with TestClient(app, root_path="/api") as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/collections", headers={"Authorization": "bearer s3cret"}).status_code == 200
        assert client.get("/collections", headers={"Authorization": "Bearer  s3cret "}).status_code == 200
        assert client.get("/collections", headers={"Authorization": "Basic s3cret"}).status_code == 401


def test_made_up_methods_do_not_grow_the_metrics(client) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        client.request(f"ZZ{i}", "/anything")
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    methods = {s.labels["method"] for s in families["semsearch_http_requests"].samples}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods


def test_built_in_routes_are_labelled_by_their_path(client) -> None:  # type: ignore[no-untyped-def]
    """FastAPI's own routes (docs, schema) and the static mount are routes, not 'unmatched'."""
    for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect", "/static/app.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/static/nope.js").status_code == 404
    assert client.post("/openapi.json").status_code == 405
    client.get("/no/such/path")
    samples = metric_samples(client.get("/metrics").text)
    requests = {labels: value for (name, labels), value in samples.items()
                if name == "semsearch_http_requests_total"}
    for route in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"):
        assert requests[(("method", "GET"), ("route", route), ("status", "200"))] == 1, route
    assert requests[(("method", "GET"), ("route", "/static"), ("status", "200"))] == 1
    assert requests[(("method", "GET"), ("route", "/static"), ("status", "404"))] == 1
    assert requests[(("method", "POST"), ("route", "/openapi.json"), ("status", "405"))] == 1
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1

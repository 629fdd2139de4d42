"""Served model names and the other servers' request shapes, in process (MiniLM default, e5 loaded):
the body's shape picks the adapter on a shared path, and each shape's bad input gets a clear 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError

from indexer.encoding import Encoder
from search_api.cli import cli
from search_api.config import ApiSettings, parse_served_names
from search_api.main import create_app
from tests.api.test_errors import assert_error
from tests.api.test_similarity import CANDIDATES, SOURCE

DATA = Path(__file__).resolve().parent.parent / "data" / "stsb_zh" / "ranking.jsonl"
SERVED = "text-embedding-3-small=all-MiniLM-L6-v2, mxbai-embed-large = multilingual-e5-small"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, minilm: Encoder,
           e5: Encoder) -> Iterator[TestClient]:
    settings = ApiSettings(data_dir=tmp_path_factory.mktemp("compat"), served_model_names=SERVED,
                           max_similarity_items=30)
    with TestClient(create_app(settings, encoders={minilm.name: minilm, e5.name: e5})) as test_client:
        yield test_client


def test_served_names_parse_and_refuse_bad_pairs() -> None:
    assert parse_served_names(SERVED) == {"text-embedding-3-small": "all-MiniLM-L6-v2",
                                          "mxbai-embed-large": "multilingual-e5-small"}
    assert parse_served_names(" , ") == {}
    for bad, words in (("no-equals", "client_name=model"), ("=m", "client_name=model"),
                       ("a=", "client_name=model"), ("a=m1,a=m2", "given twice"),
                       ("intfloat/multilingual-e5-small=all-MiniLM-L6-v2", "hide the built-in")):
        with pytest.raises(ValidationError, match=words):
            ApiSettings(served_model_names=bad)


def test_serve_option_reports_a_bad_pair(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path),
                                      "--served-model-name", "ada-002"])
    assert result.exit_code == 2
    assert "--served-model-name" in result.output and "client_name=model" in result.output


def test_served_name_answers_and_is_listed(client: TestClient, minilm: Encoder, e5: Encoder) -> None:
    body = {"model": "mxbai-embed-large", "input": ["hello"], "encoding_format": "float"}
    data = client.post("/v1/embeddings", json=body).json()
    assert data["model"] == "multilingual-e5-small"
    assert np.allclose(data["data"][0]["embedding"], e5.encode(["hello"], "document")[0], atol=1e-4)
    listed = client.get("/v1/models").json()["data"]
    assert {"id": "mxbai-embed-large", "root": "multilingual-e5-small"}.items() <= listed[-2].items()
    alias = client.get("/v1/models/sentence-transformers/all-MiniLM-L6-v2").json()
    assert alias["id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert alias["root"] == "all-MiniLM-L6-v2"
    assert_error(client.get("/v1/models/gpt-4o"), 404, "model_not_found", "gpt-4o")


def seed_scores(response: object) -> list[float]:
    data = response.json()  # type: ignore[attr-defined]
    scores: list[float] = data if isinstance(data, list) else data["scores"]
    return scores


def test_seed_example_in_every_shape_without_a_model(client: TestClient) -> None:
    """ModelScope's tutorial request, its hosted wrapper and TEI's shape, on one path, no model:
    mostly-Chinese text gets the Chinese model, which ranks the right answers first."""
    bodies = [{"source_sentence": [SOURCE], "sentences_to_compare": CANDIDATES},
              {"input": {"source_sentence": [SOURCE], "sentences_to_compare": CANDIDATES}},
              {"inputs": {"source_sentence": SOURCE, "sentences": CANDIDATES}}]
    results = [client.post("/similarity", json=body) for body in bodies]
    assert [r.status_code for r in results] == [200, 200, 200]
    assert results[0].json()["model"] == results[1].json()["model"] == "multilingual-e5-small"
    assert isinstance(results[2].json(), list)  # TEI answers a bare list of scores
    for result in results:
        scores = seed_scores(result)
        assert np.allclose(scores, seed_scores(results[0]), atol=1e-6)
        assert min(scores[1], scores[2]) > max(scores[0], scores[3]), scores


def test_twenty_chinese_sts_pairs_rank_the_paraphrase_first(client: TestClient) -> None:
    items = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    assert len(items) == 20
    for item in items:
        candidates = [*item["distractors"], item["right"]]
        wrapped = client.post("/similarity", json={"input": {"source_sentence": [item["source"]],
                                                             "sentences_to_compare": candidates}})
        tei = client.post("/similarity", json={"inputs": {"source_sentence": item["source"],
                                                          "sentences": candidates}})
        assert wrapped.json()["model"] == "multilingual-e5-small"
        for scores in (wrapped.json()["scores"], tei.json()):
            assert int(np.argmax(scores)) == len(candidates) - 1, (item, scores)


def test_english_minilm_misses_some_of_them(client: TestClient) -> None:
    """The twenty items tell the models apart: the English default, named, misses several."""
    items = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    right = 0
    for item in items:
        candidates = [*item["distractors"], item["right"]]
        scores = client.post("/similarity", json={
            "input": {"source_sentence": [item["source"]], "sentences_to_compare": candidates},
            "model": "all-MiniLM-L6-v2"}).json()["scores"]
        right += int(np.argmax(scores)) == len(candidates) - 1
    assert right <= 17


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "words"),
    [
        ("/similarity", {"inputs": {"source_sentence": "a"}}, 422, "invalid_request",
         ["inputs.sentences", "Field required"]),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}, 400, "empty_text",
         ["sentences_to_compare"]),
        ("/similarity", {"input": {"source_sentence": "a", "sentences_to_compare": ["b"]}}, 422,
         "invalid_request", ["input.source_sentence"]),
        ("/similarity", {"input": {"source_sentence": ["a"], "sentences": ["b"]}}, 422,
         "invalid_request", ["input.sentences"]),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]},
                         "parameters": {"truncation_direction": "Left"}}, 400, "unsupported_input",
         ["cut at the end"]),
        ("/similarity", {"sentence_a": "a"}, 422, "invalid_request", ["sentence_b"]),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "model": "x"}, 422,
         "invalid_request", ["model"]),
        ("/", {"inputs": "a", "normalize": False}, 400, "unsupported_input", ["normalise"]),
        ("/", {"inputs": []}, 400, "empty_text", ["at least one"]),
        ("/", {"inputs": "a", "prompt_name": "classification"}, 422, "invalid_request",
         ["prompt_name"]),
        ("/embed", {"inputs": "a", "dimensions": 999}, 400, "invalid_dimensions", ["384"]),
        ("/embed", {"inputs": "a", "truncation_direction": "left"}, 400, "unsupported_input",
         ["cut at the end"]),
        ("/embed", {"inputs": [1, 2]}, 422, "invalid_request", ["inputs"]),
        ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "a", "input_type": "rerank"}, 422,
         "invalid_request", ["input_type"]),
        ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "a", "dimension": 3}, 422,
         "invalid_request", ["dimension"]),
        ("/api/embed", {"model": "all-minilm", "input": "a"}, 400, "unknown_model",
         ["all-minilm"]),
        ("/api/embed", {"model": "all-MiniLM-L6-v2", "input": ""}, 400, "empty_text", ["input"]),
        ("/api/embeddings", {"model": "all-MiniLM-L6-v2", "input": "a"}, 422, "invalid_request",
         ["prompt"]),
    ],
)
def test_bad_bodies_of_each_shape(client: TestClient, path: str, body: dict[str, object],
                                  status: int, code: str, words: list[str]) -> None:
    response = client.post(path, json=body)
    assert_error(response, status, code, *words)
    assert "shape:" not in response.json()["error"]["message"]


def test_post_root_needs_the_api_key(tmp_path: Path, minilm: Encoder) -> None:
    settings = ApiSettings(data_dir=tmp_path, api_key="s3cret")
    with TestClient(create_app(settings, encoders={minilm.name: minilm})) as client:
        assert client.get("/").status_code == 200  # the web page stays open
        assert_error(client.post("/", json={"inputs": "a"}), 401, "unauthorized")
        assert_error(client.post("/healthz"), 401, "unauthorized")
        ok = client.post("/", json={"inputs": "a"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()[0]) == 384


def test_a_served_name_of_a_missing_model_makes_readyz_say_so(tmp_path: Path,
                                                                minilm: Encoder) -> None:
    settings = ApiSettings(data_dir=tmp_path, served_model_names="ada=/no/such/model")
    with TestClient(create_app(settings, encoders={minilm.name: minilm})) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "/no/such/model" in ready.json()["errors"]["served model name ada"]
        assert_error(client.post("/v1/embeddings", json={"model": "ada", "input": "x"}), 400,
                     "unknown_model", "/no/such/model")

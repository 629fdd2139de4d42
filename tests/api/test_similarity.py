"""POST /similarity with real models: in-process (MiniLM) and a real server process (e5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient

from indexer.encoding import Encoder, FakeEncoder
from indexer.pipeline import open_collection
from search_api.config import ApiSettings
from search_api.main import create_app
from search_api.services.model_access import allowed_models, check_allowed
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.similarity import SimilarityService
from tests.api.test_errors import assert_error
from tests.conftest import make_client

TIMEOUT = 60
SOURCE = "吃完海鲜可以喝牛奶吗?"
CANDIDATES = [
    "不可以，早晨喝牛奶不科学",
    "吃了海鲜后是不能再喝牛奶的，因为牛奶中含得有维生素C，如果海鲜喝牛奶一起服用会对人体造成一定的伤害",
    "吃海鲜是不能同时喝牛奶吃水果，这个至少间隔6小时以上才可以。",
    "吃海鲜是不可以吃柠檬的因为其中的维生素C会和海鲜中的矿物质形成砷",
]


@pytest.fixture(scope="module")
def sim_client(tmp_path_factory: pytest.TempPathFactory, minilm: Encoder,
               e5: Encoder) -> Iterator[TestClient]:
    """In-process service, default model MiniLM (e5 also loaded), with small limits to test."""
    settings = ApiSettings(data_dir=tmp_path_factory.mktemp("sim"), max_similarity_items=3,
                           max_text_chars=50)
    app = create_app(settings, encoders={minilm.name: minilm, e5.name: e5})
    with TestClient(app) as client:
        yield client


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    response = requests.post(url + "/similarity", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def test_minilm_pair_matches_the_model_and_ranks_paraphrases(sim_client: TestClient,
                                                              minilm: Encoder) -> None:
    a, b, c = ("A man is playing a guitar.", "Someone plays the guitar.",
               "The stock market fell sharply today.")
    close = sim_client.post("/similarity", json={"sentence_a": a, "sentence_b": b}).json()
    far = sim_client.post("/similarity", json={"sentence_a": a, "sentence_b": c}).json()
    assert close["similarity"] > far["similarity"] + 0.3, (close, far)
    assert close == {"sentence_a": a, "sentence_b": b, "similarity": close["similarity"],
                     "status": "success", "model": "all-MiniLM-L6-v2",
                     "truncated": {"sentence_a": False, "sentence_b": False}}
    vectors = minilm.encode([a, b, c], "query")
    assert abs(float(vectors[0] @ vectors[1]) - close["similarity"]) < 1e-4
    assert abs(float(vectors[0] @ vectors[2]) - far["similarity"]) < 1e-4
    swapped = sim_client.post("/similarity", json={"sentence_a": b, "sentence_b": a}).json()
    assert abs(swapped["similarity"] - close["similarity"]) < 1e-6


def test_truncation_is_reported(tmp_path: Path, minilm: Encoder) -> None:
    long_text = "word " * 400  # MiniLM keeps 256 tokens
    with make_client(ApiSettings(data_dir=tmp_path), minilm) as client:
        data = client.post("/similarity", json={"sentence_a": long_text, "sentence_b": "x"}).json()
        assert data["truncated"] == {"sentence_a": True, "sentence_b": False}
        many = client.post("/similarity", json={"source_sentence": ["x"],
                                                "sentences_to_compare": ["y", long_text]}).json()
        assert many["truncated"] == {"source_sentence": [False],
                                     "sentences_to_compare": [False, True]}


def test_chinese_pair_on_a_real_server(server_url: str) -> None:
    url = server_url
    response = requests.post(url + "/similarity",
                             json={"sentence_a": "今天天气真不错", "sentence_b": "外面阳光明媚"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "success"
    assert data["model"] == "multilingual-e5-small"
    assert data["similarity"] > 0.8
    unrelated = post(url, {"sentence_a": "今天天气真不错", "sentence_b": "我喜欢编程和写代码"})
    assert data["similarity"] > unrelated["similarity"]  # type: ignore[operator]


def test_modelscope_shape_on_a_real_server(server_url: str) -> None:
    data = post(server_url, {"source_sentence": [SOURCE], "sentences_to_compare": CANDIDATES})
    scores = data["scores"]
    assert isinstance(scores, list) and len(scores) == 4
    assert scores[1] > scores[0] and scores[2] > scores[0], scores
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert "matrix" not in data and "text_embedding" not in data
    assert data["model"] == "multilingual-e5-small" and data["status"] == "success"
    assert data["truncated"] == {"source_sentence": [False],
                                 "sentences_to_compare": [False] * 4}


def test_matrix_with_two_sources_equals_pairwise_scores(server_url: str) -> None:
    sources = [SOURCE, "今天天气真不错"]
    candidates = [CANDIDATES[1], "外面阳光明媚"]
    data = post(server_url, {"source_sentence": sources, "sentences_to_compare": candidates})
    matrix = data["matrix"]
    assert isinstance(matrix, list) and [len(row) for row in matrix] == [2, 2]
    assert data["scores"] == matrix[0]
    for i, source in enumerate(sources):
        for j, candidate in enumerate(candidates):
            pair = post(server_url, {"sentence_a": source, "sentence_b": candidate})
            assert abs(matrix[i][j] - pair["similarity"]) < 1e-4, (i, j)  # type: ignore[operator]
    assert matrix[0][0] > matrix[0][1] and matrix[1][1] > matrix[1][0]


def test_text_embedding_when_asked(server_url: str, e5: Encoder) -> None:
    texts = [SOURCE, CANDIDATES[1], CANDIDATES[2]]
    data = post(server_url, {"source_sentence": texts[:1], "sentences_to_compare": texts[1:],
                             "return_embeddings": True})
    embeddings = np.asarray(data["text_embedding"], dtype=np.float32)
    assert embeddings.shape == (3, 384)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    assert np.allclose(embeddings, e5.encode(texts, "query"), atol=1e-4)
    scores = data["scores"]
    assert isinstance(scores, list)
    assert np.allclose(embeddings[0] @ embeddings[1:].T, scores, atol=1e-4)


def test_model_can_be_chosen_per_request(sim_client: TestClient, e5: Encoder) -> None:
    body = {"sentence_a": "今天天气真不错", "sentence_b": "外面阳光明媚"}
    default = sim_client.post("/similarity", json=body).json()
    chosen = sim_client.post("/similarity", json={**body, "model": "multilingual-e5-small"})
    english = sim_client.post("/similarity", json={**body, "model": "all-MiniLM-L6-v2"}).json()
    assert default["model"] == "multilingual-e5-small"  # Chinese text, no model: the Chinese model
    assert english["model"] == "all-MiniLM-L6-v2" and english["similarity"] != default["similarity"]
    assert chosen.json()["model"] == "multilingual-e5-small"
    vectors = e5.encode(list(body.values()), "query")
    assert abs(float(vectors[0] @ vectors[1]) - chosen.json()["similarity"]) < 1e-4
    alias = sim_client.post("/similarity", json={**body, "model": "intfloat/multilingual-e5-small-q4"})
    assert alias.json()["similarity"] == chosen.json()["similarity"]


TWO = {"sentence_a": "a cat", "sentence_b": "a dog"}
MANY = {"source_sentence": ["a cat"], "sentences_to_compare": ["a dog"]}


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"sentence_a": "", "sentence_b": "x"}, 400, "empty_text", ["sentence_a", "empty"]),
        ({"sentence_a": "x", "sentence_b": " \n\t"}, 400, "empty_text", ["sentence_b"]),
        ({**MANY, "sentences_to_compare": ["ok", "  "]}, 400, "empty_text",
         ["sentences_to_compare[1]"]),
        ({**MANY, "source_sentence": [""]}, 400, "empty_text", ["source_sentence[0]"]),
        ({**MANY, "source_sentence": []}, 400, "empty_text", ["source_sentence", "at least one"]),
        ({**MANY, "sentences_to_compare": []}, 400, "empty_text",
         ["sentences_to_compare", "at least one"]),
        ({**MANY, "sentences_to_compare": ["a", "b", "c", "d"]}, 400, "limit_exceeded",
         ["sentences_to_compare", "3", "SEMSEARCH_MAX_SIMILARITY_ITEMS"]),
        ({**MANY, "source_sentence": ["a", "b", "c", "d"]}, 400, "limit_exceeded",
         ["source_sentence", "SEMSEARCH_MAX_SIMILARITY_ITEMS"]),
        ({**TWO, "sentence_a": "x" * 51}, 400, "limit_exceeded",
         ["sentence_a", "50", "SEMSEARCH_MAX_TEXT_CHARS"]),
        ({**MANY, "sentences_to_compare": ["ok", "y" * 51]}, 400, "limit_exceeded",
         ["sentences_to_compare[1]", "SEMSEARCH_MAX_TEXT_CHARS"]),
        ({**TWO, "model": "nope"}, 400, "unknown_model", ["nope", "multilingual-e5-small"]),
        ({**MANY, "model": "../../.."}, 400, "unknown_model", ["not available"]),
        ({**TWO, "model": ""}, 400, "unknown_model", ["empty"]),
        ({**TWO, "model": "~no-such-user-xyz/model"}, 400, "unknown_model", ["~no-such-user-xyz"]),
        ({**TWO, "sentence_a": 1}, 422, "invalid_request", ["sentence_a"]),
        ({**TWO, "sentence_b": ["x"]}, 422, "invalid_request", ["sentence_b"]),
        ({**MANY, "source_sentence": "a cat"}, 422, "invalid_request", ["source_sentence"]),
        ({**MANY, "sentences_to_compare": ["a", 2]}, 422, "invalid_request",
         ["sentences_to_compare"]),
        ({**MANY, "return_embeddings": "yes"}, 422, "invalid_request", ["return_embeddings"]),
        ({**TWO, "model": 5}, 422, "invalid_request", ["model"]),
        ({}, 422, "invalid_request", ["sentence_a", "sentence_b", "source_sentence",
                                      "sentences_to_compare"]),
        ({"sentence_a": "x"}, 422, "invalid_request", ["sentence_a", "source_sentence"]),
        ({"source_sentence": ["x"]}, 422, "invalid_request", ["sentences_to_compare"]),
        ({**TWO, **MANY}, 422, "invalid_request", ["not a mix"]),
        ({**TWO, "return_embeddings": True}, 422, "invalid_request", ["return_embeddings"]),
        ({**TWO, "top_k": 3}, 422, "invalid_request", ["top_k"]),
    ],
)
def test_bad_bodies(sim_client: TestClient, body: dict[str, object], status: int, code: str,
                    words: list[str]) -> None:
    assert_error(sim_client.post("/similarity", json=body), status, code, *words)


def test_invalid_unicode_and_malformed_json(sim_client: TestClient) -> None:
    def raw(text: str):  # type: ignore[no-untyped-def]  # JSON escapes of lone surrogates
        return sim_client.post("/similarity", content=text.encode(),
                               headers={"content-type": "application/json"})

    assert_error(raw('{"sentence_a": "\\ud800", "sentence_b": "x"}'), 422, "invalid_request",
                 "Unicode")
    assert_error(raw('{"source_sentence": ["ok"], "sentences_to_compare": ["a\\udfffb"]}'), 422,
                 "invalid_request", "Unicode")
    assert_error(raw('{"sentence_a": "x", "sentence_b": "y", "model": "\\ud800"}'), 422,
                 "invalid_request", "model")
    assert_error(raw('{"sentence_a": "x",'), 400, "malformed_json")


def test_service_without_http(tmp_path: Path, minilm: Encoder) -> None:
    """The service itself: identical texts score 1, the matrix is sources × candidates."""
    settings = ApiSettings(data_dir=tmp_path)
    service = SimilarityService(settings, CollectionRegistry(tmp_path),
                                EncoderRegistry(allow_download=False, trust_remote_code=False,
                                                preloaded={minilm.name: minilm}))
    same = service.pair("a red apple", "a red apple")
    assert same.similarity == pytest.approx(1.0, abs=1e-5) and same.similarity <= 1.0
    many = service.many(["apples", "trains"], ["a red apple", "a fast train", "bananas"])
    assert [len(row) for row in many.matrix] == [3, 3] and many.embeddings is None
    assert many.matrix[0][0] > many.matrix[0][1] and many.matrix[1][1] > many.matrix[1][0]


def test_models_of_existing_collections_are_allowed(tmp_path: Path) -> None:
    """Plumbing only (fake vectors): a collection's model joins the allow-list and /v1/models."""
    fake = FakeEncoder(name="house-model")
    open_collection(tmp_path, "house", fake).close()
    settings = ApiSettings(data_dir=tmp_path)
    allowed = allowed_models(settings, CollectionRegistry(tmp_path))
    assert allowed == {"all-MiniLM-L6-v2", "multilingual-e5-small", "bge-small-en-v1.5",
                       "house-model"}
    assert check_allowed("sentence-transformers/all-MiniLM-L6-v2", allowed) == "all-MiniLM-L6-v2"
    with make_client(settings, fake) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert ids == sorted(allowed)
        data = client.post("/similarity", json={**TWO, "model": "house-model"}).json()
        assert data["model"] == "house-model"


def test_without_a_model_chinese_text_gets_the_chinese_model(tmp_path: Path, minilm: Encoder,
                                                             e5: Encoder) -> None:
    """The seed example, sent as users copy it (no model), ranks the right answers first.

    The server's default model here is English-only MiniLM, which ranks a wrong answer first
    on this example; mostly-Chinese requests that name no model get SEMSEARCH_CHINESE_MODEL.
    """
    app = create_app(ApiSettings(data_dir=tmp_path), encoders={minilm.name: minilm, e5.name: e5})
    with TestClient(app) as client:
        data = client.post("/similarity", json={"source_sentence": [SOURCE],
                                                "sentences_to_compare": CANDIDATES}).json()
        english = client.post("/similarity", json={"sentence_a": "A man plays a guitar on stage.",
                                                    "sentence_b": "吃完海鲜"}).json()
    assert data["model"] == "multilingual-e5-small"
    best = int(np.argmax(data["scores"]))
    assert best in (1, 2) and min(data["scores"][1], data["scores"][2]) > data["scores"][0], data
    assert english["model"] == "all-MiniLM-L6-v2"  # mostly English letters: the default model

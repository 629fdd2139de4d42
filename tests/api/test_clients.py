"""The clients people already run, unmodified but for the base URL, key and documented settings,
against a real `semsearch serve` (multilingual-e5-small, served names from tests/api/conftest.py).

Chroma's OpenAIEmbeddingFunction is not installed (chromadb pulls 23 packages, Kubernetes and
OpenTelemetry among them): its test sends the exact call it makes through the `openai` client.
"""

from __future__ import annotations

import numpy as np
import openai
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai import OpenAIEmbedding
from ollama import Client as OllamaClient
from ollama import ResponseError
from openai import OpenAI

from indexer.encoding import Encoder
from tests.api.conftest import SERVER_MODEL

TEXTS = ["吃完海鲜可以喝牛奶吗?", "The weather is lovely today."]
SOURCE = "吃完海鲜可以喝牛奶吗?"
CANDIDATES = ["不可以，早晨喝牛奶不科学", "吃海鲜是不能同时喝牛奶吃水果，这个至少间隔6小时以上才可以。"]


@pytest.fixture(scope="module")
def docs(e5: Encoder) -> np.ndarray:
    return e5.encode(TEXTS, "document")


@pytest.fixture(scope="module")
def queries(e5: Encoder) -> np.ndarray:
    return e5.encode(TEXTS, "query")


@pytest.fixture(scope="module")
def oai(server_url: str) -> OpenAI:
    return OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=60)


def close(got: object, want: np.ndarray) -> bool:
    return bool(np.allclose(np.asarray(got, dtype=np.float32), want, atol=1e-4))


def test_openai_retrieves_served_and_canonical_models(oai: OpenAI) -> None:
    served = oai.models.retrieve("text-embedding-3-small")
    assert served.id == "text-embedding-3-small" and served.object == "model"
    assert served.model_extra == {"root": SERVER_MODEL}
    assert oai.models.retrieve(SERVER_MODEL).id == SERVER_MODEL
    listed = {m.id: m.model_extra for m in oai.models.list()}
    assert listed["text-embedding-ada-002"] == {"root": SERVER_MODEL}
    assert listed["all-MiniLM-L6-v2"] == {"root": "all-MiniLM-L6-v2"}
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("text-embedding-3-large")
    assert caught.value.code == "model_not_found"
    assert "SEMSEARCH_SERVED_MODEL_NAMES" in str(caught.value)


def test_openai_served_name_with_dimensions(oai: OpenAI, docs: np.ndarray) -> None:
    response = oai.embeddings.create(model="text-embedding-3-small", input=TEXTS, dimensions=64)
    assert response.model == SERVER_MODEL  # the model that answered, not the name sent
    prefix = docs[:, :64] / np.linalg.norm(docs[:, :64], axis=1, keepdims=True)
    assert close([d.embedding for d in response.data], prefix)


def test_openai_token_ids_name_the_langchain_switch(oai: OpenAI) -> None:
    # What LangChain's OpenAIEmbeddings sends with its default check_embedding_ctx_length=True.
    with pytest.raises(openai.BadRequestError) as caught:
        oai.embeddings.create(model="text-embedding-ada-002", input=[[1820, 9282, 374]])
    assert caught.value.code == "unsupported_input"
    assert "check_embedding_ctx_length=False" in str(caught.value)


def test_langchain_openai_embeddings(server_url: str, docs: np.ndarray) -> None:
    embeddings = OpenAIEmbeddings(base_url=f"{server_url}/v1", api_key="unused",  # type: ignore[arg-type]
                                  check_embedding_ctx_length=False, max_retries=0)
    assert close(embeddings.embed_documents(TEXTS), docs)  # default model: text-embedding-ada-002
    assert close([embeddings.embed_query(TEXTS[1])], docs[1:])
    shortened = OpenAIEmbeddings(model="text-embedding-3-small", dimensions=128,
                                 base_url=f"{server_url}/v1", api_key="unused",  # type: ignore[arg-type]
                                 check_embedding_ctx_length=False, max_retries=0)
    assert np.asarray(shortened.embed_documents(TEXTS)).shape == (2, 128)


def test_llama_index_openai_embedding(server_url: str, docs: np.ndarray) -> None:
    default = OpenAIEmbedding(api_base=f"{server_url}/v1", api_key="unused", max_retries=0)
    assert close(default.get_text_embedding_batch(TEXTS), docs)  # text-embedding-ada-002
    named = OpenAIEmbedding(model_name=SERVER_MODEL, api_base=f"{server_url}/v1",
                            api_key="unused", max_retries=0)
    assert close([named.get_query_embedding(TEXTS[0])], docs[:1])


def test_chroma_openai_embedding_function_request(oai: OpenAI, docs: np.ndarray) -> None:
    # chromadb.utils.embedding_functions.OpenAIEmbeddingFunction(api_base=..., model_name
    # default "text-embedding-ada-002") makes exactly this call; newlines become spaces.
    texts = [t.replace("\n", " ") for t in TEXTS]
    data = oai.embeddings.create(input=texts, model="text-embedding-ada-002").data
    assert close([d.embedding for d in sorted(data, key=lambda d: d.index)], docs)


def test_vendor_fields_are_accepted(server_url: str, docs: np.ndarray, queries: np.ndarray) -> None:
    import requests

    body = {"model": "text-embedding-3-small", "input": TEXTS, "encoding_format": None,
            "user": "u1", "truncate": "END"}
    plain = requests.post(f"{server_url}/v1/embeddings", json=body, timeout=60).json()
    assert close([d["embedding"] for d in plain["data"]], docs)
    as_query = requests.post(f"{server_url}/v1/embeddings", json={**body, "input_type": "query"},
                             timeout=60).json()
    assert close([d["embedding"] for d in as_query["data"]], queries)  # e5's "query: " prefix
    start = requests.post(f"{server_url}/v1/embeddings", json={**body, "truncate": "START"},
                          timeout=60)
    assert start.status_code == 400 and "cut at the end" in start.json()["error"]["message"]


def test_huggingface_inference_client(server_url: str, docs: np.ndarray) -> None:
    client = InferenceClient(base_url=server_url, timeout=60)
    vectors = client.feature_extraction(TEXTS)
    assert vectors.shape == (2, 384) and close(vectors, docs)
    assert client.feature_extraction(TEXTS[1]).shape == (1, 384)
    scores = client.sentence_similarity(SOURCE, CANDIDATES)
    assert len(scores) == 2 and scores[1] > scores[0]
    with pytest.raises(HfHubHTTPError) as caught:
        client.feature_extraction(TEXTS, normalize=False)
    assert caught.value.response is not None and caught.value.response.status_code == 400


def test_tei_routes_and_info(server_url: str, docs: np.ndarray, queries: np.ndarray) -> None:
    import requests

    embedded = requests.post(f"{server_url}/embed", json={"inputs": TEXTS}, timeout=60).json()
    assert close(embedded, docs)
    prompted = requests.post(f"{server_url}/embed", json={"inputs": TEXTS, "prompt_name": "query"},
                             timeout=60).json()
    assert close(prompted, queries)
    info = requests.get(f"{server_url}/info", timeout=60).json()
    assert info["model_id"] == SERVER_MODEL and info["max_input_length"] == 512
    assert info["max_client_batch_size"] == 256


def test_ollama_client(server_url: str, docs: np.ndarray) -> None:
    client = OllamaClient(host=server_url, timeout=60)
    response = client.embed(model="nomic-embed-text", input=TEXTS)
    assert response.model == SERVER_MODEL and close(response.embeddings, docs)
    assert close(client.embed(model="nomic-embed-text:latest", input=TEXTS[1]).embeddings, docs[1:])
    legacy = client.embeddings(model=SERVER_MODEL, prompt=TEXTS[0])
    assert close([legacy.embedding], docs[:1])
    with pytest.raises(ResponseError) as caught:
        client.embed(model="mxbai-embed-large", input="x")
    assert caught.value.status_code == 400 and "not available" in str(caught.value)

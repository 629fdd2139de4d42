"""Shared fixtures: real bundled models loaded once per session, collections in tmp dirs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.encoding import Encoder, FakeEncoder, load_encoder
from indexer.models import SourceDocument
from indexer.pipeline import index_documents, open_collection
from search_api.config import ApiSettings
from search_api.main import create_app

DATA = Path(__file__).parent / "data"

# Tests compare scores with fp32 references to 1e-4, and onnx-int8 (what `auto` picks on AVX2
# CPUs) shifts a vector slightly with its batch; the int8 and onnx paths have their own tests
# (tests/indexer/encoding/test_backends.py). ONNX exports go to a throwaway cache, never ~/.cache.
os.environ.setdefault("SEMSEARCH_BACKEND", "torch")
if "SEMSEARCH_CACHE_DIR" not in os.environ:
    # Removed when the session ends: each run built 1.5 GB (the e5 folder, ONNX exports) and
    # left it in /tmp, which filled a development machine's disk after a few hundred runs.
    os.environ["SEMSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="semsearch-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SEMSEARCH_CACHE_DIR"], ignore_errors=True)
# Entry points read SEMSEARCH_CACHE_DIR through their settings; tests that load a model
# directly pass this, as the settings would (model code reads no settings itself).
TEST_CACHE = Path(os.environ["SEMSEARCH_CACHE_DIR"])

# Short documents with metadata of every filterable type.
DOCS = [
    ("bake-1", "How to bake sourdough bread at home with a starter", "cooking", "en", 2021, True),
    ("bake-2", "Simple recipe for chocolate chip cookies in the oven", "cooking", "en", 2019, False),
    ("sport-1", "The football team won the championship final last night", "sport", "en", 2022, True),
    ("sport-2", "Marathon runners train for months to build endurance", "sport", "en", 2020, False),
    ("tech-1", "Python is a popular programming language for data science", "tech", "en", 2023, True),
    ("tech-2", "GPUs accelerate the training of deep neural networks", "tech", "en", 2021, False),
    ("space-1", "The telescope captured images of a distant galaxy", "science", "en", 2022, False),
    ("zh-1", "今天天气很好，我们去公园散步吧", "daily", "zh", 2024, True),
]


def demo_documents() -> list[SourceDocument]:
    return [SourceDocument(doc_id=i, text=t, metadata={"topic": c, "lang": lang, "year": y,
                                                       "featured": f})
            for i, t, c, lang, y, f in DOCS]


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    """The bundled all-MiniLM-L6-v2 (real model, no network), loaded once."""
    return load_encoder("all-MiniLM-L6-v2", backend="torch")


@pytest.fixture(scope="session")
def e5() -> Encoder:
    """The bundled multilingual-e5-small (torch fp32, like the test servers), loaded once."""
    return load_encoder("multilingual-e5-small", backend="torch", cache_dir=TEST_CACHE)


@pytest.fixture
def fake_encoder() -> Encoder:
    """Deterministic vectors for plumbing-only tests; never proof that search works."""
    return FakeEncoder(dimension=16)


@pytest.fixture
def data_dir(tmp_path: Path, minilm: Encoder) -> Path:
    """A data dir holding collection 'docs' (the DOCS above) built with MiniLM."""
    collection = open_collection(tmp_path, "docs", minilm)
    index_documents(collection, minilm, demo_documents())
    collection.close()
    return tmp_path


def make_client(settings: ApiSettings, minilm: Encoder) -> TestClient:
    return TestClient(create_app(settings, encoders={minilm.name: minilm}))


@pytest.fixture
def client(data_dir: Path, minilm: Encoder) -> Iterator[TestClient]:
    """A TestClient (lifespan run) over `data_dir`, with the session's MiniLM shared."""
    settings = ApiSettings(data_dir=data_dir, default_collection="docs")
    with make_client(settings, minilm) as test_client:
        yield test_client

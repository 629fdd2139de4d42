"""One storage contract, three backends: FAISS + SQLite, milvus-lite in-process, milvus-lite server.

Milvus runs for real: the in-process `.db` database and the `milvus-lite server` subprocess
(on a free loopback port) are started once per session and shared; each test works in its
own uniquely named collection. Vectors are real all-MiniLM-L6-v2 embeddings of DOCS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from indexer.encoding import Encoder
from indexer.pipeline import encoder_model_info
from storage import DocumentInput, ModelInfo
from storage.backend import Backend, CollectionHandle
from storage.factory import open_backend
from storage.faiss.backend import FaissBackend
from tests.servers import free_port

BACKENDS = ["faiss", "milvus-lite", "milvus-server"]
SERVER_START_TIMEOUT_S = 60.0

# id, text, metadata: every filterable type, and values that look alike across types.
DOCS = [
    ("bake-1", "How to bake sourdough bread at home with a starter",
     {"topic": "cooking", "year": 2021, "featured": True, "rating": 4.5}),
    ("bake-2", "Simple recipe for chocolate chip cookies in the oven",
     {"topic": "cooking", "year": 2019, "featured": False, "rating": 1}),
    ("sport-1", "The football team won the championship final last night",
     {"topic": "sport", "year": 2022, "featured": True, "rating": 3.0}),
    ("sport-2", "Marathon runners train for months to build endurance",
     {"topic": "sport", "year": 2020, "featured": 1}),
    ("tech-1", "Python is a popular programming language for data science",
     {"topic": "tech", "year": 2023, "featured": True, "tags": ["python"]}),
    ("tech-2", "GPUs accelerate the training of deep neural networks",
     {"topic": "tech", "year": "2021", "featured": False}),
    ("space-1", "The telescope captured images of a distant galaxy",
     {"topic": "science", "year": 2022, "nested": {"a": 1}}),
    ("zh-1", "今天天气很好，我们去公园散步吧", {"topic": "daily", "lang": "zh", "year": 2024}),
]
QUERIES = ["baking bread at home", "who won the football match", "deep learning on graphics cards",
           "looking at stars and galaxies"]


def milvus_missing(reason: str) -> NoReturn:
    """In CI a missing Milvus package is a failure (the test extra installs it); locally, a skip."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: `pip install -e .[test]` should have installed it)")
    pytest.skip(f"{reason}; install it with: pip install 'semsearch[milvus]'")


def require_milvus() -> None:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as exc:
        milvus_missing(f"pymilvus / milvus-lite are not installed ({exc})")


@dataclass(frozen=True, kw_only=True)
class Corpus:
    """DOCS and QUERIES embedded once with the real model."""

    model: ModelInfo
    doc_vectors: np.ndarray
    query_vectors: np.ndarray

    def documents(self) -> list[DocumentInput]:
        return [DocumentInput(doc_id=doc_id, text=text, metadata=meta, vector=vector)
                for (doc_id, text, meta), vector in zip(DOCS, self.doc_vectors, strict=True)]

    def exact(self, query: int, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """The true top-k (id, score) by inner product, computed with numpy."""
        scores = self.doc_vectors @ self.query_vectors[query]
        ranked = [(DOCS[i][0], float(scores[i])) for i in np.argsort(-scores, kind="stable")]
        return [hit for hit in ranked if allowed is None or hit[0] in allowed][:k]


@pytest.fixture(scope="session")
def corpus(minilm: Encoder) -> Corpus:
    return Corpus(model=encoder_model_info(minilm),
                  doc_vectors=minilm.encode([text for _, text, _ in DOCS], "document"),
                  query_vectors=minilm.encode(QUERIES, "query"))


@pytest.fixture(scope="session")
def milvus_lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A milvus-lite `.db` database, served in-process by pymilvus (one per session)."""
    require_milvus()
    return str(tmp_path_factory.mktemp("milvus-lite") / "contract.db")


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`milvus-lite server` in a subprocess on a free loopback port; stopped at session end."""
    require_milvus()
    with milvus_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


@contextmanager
def milvus_server(folder: Path) -> Iterator[str]:
    """`milvus-lite server` keeping its data in `folder`/data; yields its URI; always stopped.

    Starting it again on the same folder is a Milvus restart: what was loaded is released.
    """
    from pymilvus import MilvusClient, MilvusException

    port = free_port()
    log_path = folder / f"server-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder / "data"),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"milvus-lite server exited ({server.returncode}):\n"
                            f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                # dedicated: pymilvus shares one connection per address and keeps it after
                # close(); a shared probe would leave its 2 s timeout on that connection, the
                # timeout pymilvus reconnects with when a health check of a connection idle
                # for 30 s fails (a busy 2-core machine): "Fail connecting to server on ...".
                client = MilvusClient(uri=uri, timeout=2.0, dedicated=True)
                client.list_collections()
                client.close()
                break
            except MilvusException:
                if time.monotonic() > deadline:
                    pytest.fail(f"milvus-lite server not ready after {SERVER_START_TIMEOUT_S}s:\n"
                                f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def make_backend(kind: str, request: pytest.FixtureRequest, data_dir: Path) -> Backend:
    if kind == "faiss":
        return FaissBackend(data_dir)
    uri_fixture = "milvus_lite_uri" if kind == "milvus-lite" else "milvus_server_uri"
    return open_backend("milvus", data_dir=data_dir, milvus_uri=request.getfixturevalue(uri_fixture))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each storage backend in turn (the same test runs against all of them)."""
    opened = make_backend(request.param, request, tmp_path / "data")
    yield opened
    opened.close()


@pytest.fixture
def name() -> str:
    """A collection name no other test uses (the Milvus databases are shared per session)."""
    return f"c-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def handles() -> Iterator[list[CollectionHandle]]:
    opened: list[CollectionHandle] = []
    yield opened
    for handle in opened:
        handle.close()


@pytest.fixture
def new_collection(backend: Backend, name: str, corpus: Corpus,
                   handles: list[CollectionHandle]) -> Callable[..., CollectionHandle]:
    """Factory: an empty collection for the corpus's model (or `model`) in `backend`."""

    def factory(model: ModelInfo | None = None, collection: str | None = None) -> CollectionHandle:
        handle = backend.open_or_create(collection or name, model or corpus.model)
        handles.append(handle)
        return handle

    return factory


@pytest.fixture
def filled(new_collection: Callable[..., CollectionHandle], corpus: Corpus) -> CollectionHandle:
    """A collection holding DOCS, committed in one generation."""
    collection = new_collection()
    with collection.writer() as writer:
        writer.commit(corpus.documents())
    return collection

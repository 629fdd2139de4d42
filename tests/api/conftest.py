"""A real `semsearch serve` process (multilingual-e5-small), shared by the HTTP-level tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import clean_env, running_server

SERVER_MODEL = "multilingual-e5-small"
# The names unmodified clients send by default (LlamaIndex and Chroma: ada-002; LangChain:
# text-embedding-3-small ...), answered by the server's model.
SERVED_NAMES = {"text-embedding-ada-002": SERVER_MODEL, "text-embedding-3-small": SERVER_MODEL,
                "nomic-embed-text": SERVER_MODEL}


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of `semsearch serve` over an empty data dir, SEMSEARCH_MODEL=e5, SERVED_NAMES.

    Started once per session, on first use, and terminated at the end.
    """
    data_dir = tmp_path_factory.mktemp("served") / "data"
    data_dir.mkdir()
    served = ",".join(f"{name}={model}" for name, model in SERVED_NAMES.items())
    env = clean_env(SEMSEARCH_MODEL=SERVER_MODEL, SEMSEARCH_SERVED_MODEL_NAMES=served)
    with running_server(data_dir, env=env) as url:
        yield url

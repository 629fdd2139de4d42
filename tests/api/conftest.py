"""A real `semsearch serve` process (multilingual-e5-small), shared by the HTTP-level tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import clean_env, running_server

SERVER_MODEL = "multilingual-e5-small"


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of `semsearch serve` over an empty data dir, SEMSEARCH_MODEL=e5.

    Started once per session, on first use, and terminated at the end.
    """
    data_dir = tmp_path_factory.mktemp("served") / "data"
    data_dir.mkdir()
    with running_server(data_dir, env=clean_env(SEMSEARCH_MODEL=SERVER_MODEL)) as url:
        yield url

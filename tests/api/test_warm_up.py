"""A server is ready only once auto's long-text route (loaded in the background) is loaded."""

from __future__ import annotations

import pytest

from indexer.encoding import MINILM, backends
from indexer.encoding.length_routing import LengthRoutedEncoder
from indexer.settings import RuntimeSettings
from search_api.services.registry import EncoderRegistry


def test_a_server_is_ready_only_once_the_long_route_is_loaded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16", "avx512_bf16"}))
    registry = EncoderRegistry(allow_download=False, trust_remote_code=False, micro_batch=False,
                               query_cache_size=0, runtime=RuntimeSettings(backend="auto"))
    encoder = registry.get(MINILM)
    assert isinstance(encoder, LengthRoutedEncoder)
    registry.wait_for_warm_up()
    assert encoder._long is not None

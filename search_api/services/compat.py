"""Options of the other servers' shapes (TEI, Ollama) checked and turned into ours."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from indexer.encoding import Kind
from search_api.errors import UnsupportedInput
from search_api.services.embeddings import check_truncation


def tei_kind(normalize: bool | None, direction: str | None, prompt_name: str | None) -> Kind:
    """How to encode a TEI request, after refusing the options this server cannot honour.

    Args:
        normalize: TEI's `normalize` (vectors here are always L2-normalised).
        direction: TEI's `truncation_direction`; only the end of a text is ever cut.
        prompt_name: "query" encodes as queries; anything else (or none) as documents.

    Returns:
        The encoder kind.

    Raises:
        UnsupportedInput: `normalize` is false or `truncation_direction` is left.
    """
    if normalize is False:
        raise UnsupportedInput("'normalize': false is not supported: this server returns "
                               "L2-normalised vectors only (scores are cosine similarities)")
    check_truncation(None, direction)
    return "query" if prompt_name == "query" else "document"


def ollama_model(model: str) -> str:
    """An Ollama model name without its default tag (`all-minilm:latest` -> `all-minilm`)."""
    name, _, tag = model.strip().rpartition(":")
    return name if name and tag == "latest" else model


def server_version() -> str:
    """This package's version, for TEI's /info."""
    try:
        return version("semsearch")
    except PackageNotFoundError:
        return "0+unknown"

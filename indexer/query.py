"""The query step shared by search and FAQ matching: encode the queries, then search in a mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.encoding import Encoder, Kind
from indexer.encoding.languages import dense_understands
from storage import Filter, Hit
from storage.backend import CollectionHandle
from storage.fusion import Fusion, Mode, search_in_mode
from storage.index_types import SearchParams


@dataclass(frozen=True, kw_only=True)
class QueryResults:
    """Hits per query, best first, and which queries were cut to the model's max length."""

    hits: list[list[Hit]]
    truncated: list[bool]


def encode_and_search(collection: CollectionHandle, encoder: Encoder | None, queries: Sequence[str], *,
                      mode: Mode, k: int, kind: Kind = "query", filter_: Filter | None = None,
                      fusion: Fusion | None = None,
                      params: SearchParams | None = None) -> QueryResults:
    """Encode `queries` with the collection's model (not in lexical mode) and search them.

    Args:
        collection: the collection searched.
        encoder: its model; None only in lexical mode, which needs no model.
        queries: the query texts.
        mode: dense, lexical (BM25 over the texts) or hybrid.
        k: hits per query.
        kind: how the queries are encoded ("query", or "document" for symmetric tasks).
        filter_: metadata filter, applied the same way in every mode.
        fusion: how hybrid fuses the channels (default: storage.fusion.Fusion()).
        params: efSearch / nprobe overrides for the dense channel.

    Returns:
        The hits of each query, in order, and the truncation flags.
    """
    texts = list(queries)
    vectors, truncated = None, [False] * len(texts)
    if mode != "lexical":
        if encoder is None:
            raise ValueError(f"mode '{mode}' needs the collection's encoder")
        encoded = encoder.encode_batch(texts, kind)
        vectors, truncated = encoded.vectors, encoded.truncated
    hits = search_in_mode(collection, mode, texts=texts, vectors=vectors, k=k, filter_=filter_,
                          fusion=fusion, dense_usable=dense_understands(collection.model.name, texts),
                          params=params)
    return QueryResults(hits=hits, truncated=truncated)

"""Search modes and the fusion of dense and lexical rankings into one hybrid ranking."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from storage.errors import SemsearchError
from storage.records import Hit

if TYPE_CHECKING:
    from storage.backend import CollectionHandle
    from storage.filters import Filter
    from storage.index_types import SearchParams

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
FusionMethod = Literal["rrf", "alpha"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("rrf", "alpha")
HYBRID_DEPTH = 100  # candidates taken from each channel before fusing


class InvalidSearchMode(SemsearchError):
    code = "invalid_mode"
    status = 422


@dataclass(frozen=True, kw_only=True)
class Fusion:
    """How hybrid mode combines the channels.

    `rrf`: reciprocal rank fusion, alpha/(rrf_k + dense rank) + (1 - alpha)/(rrf_k + lexical rank).
    `alpha`: alpha * dense cosine min-max normalised over the candidates + (1 - alpha) * BM25 / the
    best BM25. A document one channel did not return gets nothing from that channel.
    """

    method: FusionMethod = "alpha"  # the best on every evaluated set (README, "Choosing a model")
    alpha: float = 0.5  # the dense channel's weight
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise InvalidSearchMode(f"fusion must be one of {', '.join(FUSION_METHODS)}, "
                                    f"got '{self.method}'")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidSearchMode(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.rrf_k < 1:
            raise InvalidSearchMode(f"rrf_k must be at least 1, got {self.rrf_k}")


def check_mode(mode: str) -> Mode:
    """`mode` as a Mode, or InvalidSearchMode naming the choices."""
    for known in MODES:
        if mode == known:
            return known
    raise InvalidSearchMode(f"mode must be one of {', '.join(MODES)}, got '{mode}'")


def search_in_mode(collection: CollectionHandle, mode: Mode, *, texts: Sequence[str],
                   vectors: np.ndarray | None, k: int, filter_: Filter | None = None,
                   fusion: Fusion | None = None,
                   dense_usable: Sequence[bool] | None = None,
                   params: SearchParams | None = None) -> list[list[Hit]]:
    """Top-k hits per query in one mode; filters restrict every channel the same way.

    Args:
        collection: the collection searched.
        mode: `dense` (vectors), `lexical` (texts, BM25) or `hybrid` (both, fused).
        texts: the query texts (used by lexical and hybrid).
        vectors: the query vectors, one row per text (dense and hybrid; None in lexical mode).
        k: hits per query.
        filter_: metadata filter.
        fusion: how hybrid fuses (default: `Fusion()`).
        dense_usable: per query, False where the model cannot embed it meaningfully (hybrid
            then ranks that query by the lexical channel alone).
        params: efSearch / nprobe overrides for the dense channel's ANN index.
    """
    if mode != "lexical" and vectors is None:
        raise ValueError(f"mode '{mode}' needs query vectors")
    if mode == "dense":
        assert vectors is not None
        return collection.search(vectors, k, filter_, params)
    if mode == "lexical":
        return collection.lexical_search(texts, k, filter_)
    assert vectors is not None
    depth = max(k, HYBRID_DEPTH)
    dense = collection.search(vectors, depth, filter_, params)
    lexical = collection.lexical_search(texts, depth, filter_)
    chosen = fusion or Fusion()
    usable = dense_usable if dense_usable is not None else [True] * len(dense)
    shares = collection.lexical_coverage(texts)
    lexical_only = dataclasses.replace(chosen, alpha=0.0)
    return [fuse(d, lx, k, chosen if use else lexical_only, lexical_share=share if use else 1.0)
            for d, lx, use, share in zip(dense, lexical, usable, shares, strict=True)]


def fuse(dense: Sequence[Hit], lexical: Sequence[Hit], k: int, fusion: Fusion,
         lexical_share: float = 1.0) -> list[Hit]:
    """Merge one query's dense hits (scored by cosine) and lexical hits (scored by BM25).

    Args:
        dense: hits from the dense channel, best first, `score` = cosine.
        lexical: hits from the lexical channel, best first, `score` = BM25.
        k: how many fused hits to return.
        fusion: the method and weights.
        lexical_share: scales the lexical channel's weight: the share of the query's terms
            found in the collection (storage.faiss.lexical.coverage); 1.0 leaves it as set.

    Returns:
        Up to k hits, best first, `score` = the fused score, with both channel scores where known.
    """
    if fusion.method == "rrf":
        dense_part = _rrf(dense, fusion.alpha, fusion.rrf_k)
        lexical_part = _rrf(lexical, (1.0 - fusion.alpha) * lexical_share, fusion.rrf_k)
    else:
        dense_part = _min_max(dense, fusion.alpha)
        lexical_part = _max_scaled(lexical, (1.0 - fusion.alpha) * lexical_share)
    channels: dict[str, tuple[Hit | None, Hit | None]] = {hit.doc_id: (hit, None) for hit in dense}
    for hit in lexical:
        channels[hit.doc_id] = (channels.get(hit.doc_id, (None, None))[0], hit)
    scores = {doc_id: dense_part.get(doc_id, 0.0) + lexical_part.get(doc_id, 0.0) for doc_id in channels}

    def cosine(doc_id: str) -> float:
        dense_hit = channels[doc_id][0]
        return dense_hit.score if dense_hit is not None else -2.0

    # Ties (common in rrf) go to the better cosine, then the id, so the order is reproducible.
    best = sorted(scores, key=lambda doc_id: (-scores[doc_id], -cosine(doc_id), doc_id))[:k]
    return [_fused_hit(*channels[doc_id], scores[doc_id]) for doc_id in best]


def _fused_hit(dense: Hit | None, lexical: Hit | None, score: float) -> Hit:
    """One fused hit (built only for the k returned: candidates are many, hits are few)."""
    source = dense or lexical
    assert source is not None
    # The best passage is the dense channel's where it saw the document (the lexical one's else).
    return Hit(doc_id=source.doc_id, score=score, text=source.text, metadata=source.metadata,
               dense_score=dense.score if dense is not None else None,
               lexical_score=lexical.score if lexical is not None else None,
               passage=source.passage)


def _rrf(hits: Sequence[Hit], weight: float, rrf_k: int) -> dict[str, float]:
    return {hit.doc_id: weight / (rrf_k + rank) for rank, hit in enumerate(hits, start=1)}


def _min_max(hits: Sequence[Hit], weight: float) -> dict[str, float]:
    if not hits:
        return {}
    scores = [hit.score for hit in hits]
    low, spread = min(scores), max(scores) - min(scores)
    if spread <= 0:
        return {hit.doc_id: weight for hit in hits}
    return {hit.doc_id: weight * (hit.score - low) / spread for hit in hits}


def _max_scaled(hits: Sequence[Hit], weight: float) -> dict[str, float]:
    best = max((hit.score for hit in hits), default=0.0)
    if best <= 0:
        return {}
    return {hit.doc_id: weight * hit.score / best for hit in hits}


__all__ = ["FUSION_METHODS", "HYBRID_DEPTH", "MODES", "Fusion", "FusionMethod",
           "InvalidSearchMode", "Mode", "check_mode", "fuse", "search_in_mode"]

"""Hybrid fusion math, checked by hand, and modes over a real collection."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from storage import Collection, DocumentInput, Hit
from storage.fusion import Fusion, InvalidSearchMode, check_mode, fuse, search_in_mode
from tests.storage.helpers import commit, make_vectors


def _hit(doc_id: str, score: float) -> Hit:
    return Hit(doc_id=doc_id, score=score, text=doc_id, metadata={})


DENSE = [_hit("a", 0.9), _hit("b", 0.7), _hit("c", 0.5)]
LEXICAL = [_hit("c", 12.0), _hit("d", 6.0)]


def test_rrf_by_hand() -> None:
    fused = fuse(DENSE, LEXICAL, 10, Fusion(method="rrf", alpha=0.5, rrf_k=60))
    expected = {"a": 0.5 / 61, "b": 0.5 / 62, "c": 0.5 / 63 + 0.5 / 61, "d": 0.5 / 62}
    assert [h.doc_id for h in fused] == ["c", "a", "b", "d"]  # b and d tie; b has the cosine
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.doc_id])
    c = fused[0]
    assert (c.dense_score, c.lexical_score) == (0.5, 12.0)
    assert fused[-1].dense_score is None and fused[-1].lexical_score == 6.0


def test_alpha_by_hand() -> None:
    fused = fuse(DENSE, LEXICAL, 3, Fusion(method="alpha", alpha=0.25))
    # dense min-max: a 1, b 0.5, c 0; lexical / best: c 1, d 0.5
    expected = {"a": 0.25, "b": 0.125, "c": 0.75, "d": 0.375}
    assert [h.doc_id for h in fused] == ["c", "d", "a"]
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.doc_id])


def test_alpha_extremes_reduce_to_one_channel() -> None:
    only_dense = fuse(DENSE, LEXICAL, 2, Fusion(method="alpha", alpha=1.0))
    only_lexical = fuse(DENSE, LEXICAL, 1, Fusion(method="alpha", alpha=0.0))
    assert [h.doc_id for h in only_dense] == ["a", "b"]
    assert [h.doc_id for h in only_lexical] == ["c"]
    assert fuse([], [], 5, Fusion()) == []
    assert [h.doc_id for h in fuse([], LEXICAL, 5, Fusion(method="alpha"))] == ["c", "d"]


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(InvalidSearchMode, match="alpha must be between 0 and 1"):
        Fusion(alpha=1.5)
    with pytest.raises(InvalidSearchMode, match="fusion must be one of rrf, alpha"):
        Fusion(method="max")  # type: ignore[arg-type]
    with pytest.raises(InvalidSearchMode, match="mode must be one of dense, lexical, hybrid"):
        check_mode("sparse-ish")


def test_every_mode_applies_the_same_filter(new_collection: Callable[..., Collection]) -> None:
    collection = new_collection()
    vectors = make_vectors(6)
    docs = [DocumentInput(doc_id=f"d{i}", text=f"shared words item{i}", metadata={"even": i % 2 == 0},
                          vector=vectors[i]) for i in range(6)]
    commit(collection, docs)
    for mode in ("dense", "lexical", "hybrid"):
        hits = search_in_mode(collection, check_mode(mode), texts=["shared words"],
                              vectors=vectors[:1], k=10, filter_={"even": True})[0]
        assert {h.doc_id for h in hits} == {"d0", "d2", "d4"}, mode
    hybrid = search_in_mode(collection, "hybrid", texts=["item3"], vectors=vectors[3:4], k=1)[0]
    assert hybrid[0].doc_id == "d3"  # first in both channels
    assert hybrid[0].dense_score == pytest.approx(1.0, abs=1e-5) and hybrid[0].lexical_score


def test_hybrid_ranks_a_query_the_model_cannot_read_by_lexical_alone(
        new_collection: Callable[..., Collection]) -> None:
    collection = new_collection()
    vectors = make_vectors(4)
    docs = [DocumentInput(doc_id=f"d{i}", text=text, vector=vectors[i])
            for i, text in enumerate(["天气很好", "天气预报", "公园散步", "other"])]
    commit(collection, docs)
    # The query vector points at d3, which shares no words with the query.
    kwargs = {"texts": ["天气很好"], "vectors": vectors[3:4], "k": 4}
    fused = search_in_mode(collection, "hybrid", **kwargs)[0]  # type: ignore[arg-type]
    gated = search_in_mode(collection, "hybrid", dense_usable=[False], **kwargs)[0]  # type: ignore[arg-type]
    lexical = search_in_mode(collection, "lexical", **kwargs)[0]  # type: ignore[arg-type]
    assert "d3" in {h.doc_id for h in fused[:2]}  # the dense channel pulls its pick up
    assert [h.doc_id for h in gated][:len(lexical)] == [h.doc_id for h in lexical]
    assert gated[0].doc_id == "d0" and gated[-1].doc_id != "d0"

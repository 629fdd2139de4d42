"""Metric math checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from scripts.evallib.metrics import mrr_at_k, ndcg_at_k, recall_at_k


def test_ndcg_hand_computed() -> None:
    # relevant d1 (grade 2) at rank 3, d2 (grade 1) at rank 1
    ranked = ["d2", "x", "d1", "y"]
    relevant = {"d1": 2, "d2": 1}
    dcg = 1 / math.log2(2) + 2 / math.log2(4)  # 1 + 1 = 2
    idcg = 2 / math.log2(2) + 1 / math.log2(3)  # 2 + 0.6309
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(0.76018, abs=1e-5)
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx(1 / (2 + 1 / math.log2(3)))
    assert ndcg_at_k(["d1", "d2"], relevant) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], relevant) == 0.0
    assert ndcg_at_k(["x"], {}) == 0.0


def test_mrr_and_recall() -> None:
    assert mrr_at_k(["x", "y", "d1"], {"d1": 1}) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"] * 10 + ["d1"], {"d1": 1}, 10) == 0.0
    assert recall_at_k(["d1", "x"], {"d1": 1, "d2": 1, "d3": 0}, 100) == pytest.approx(0.5)

"""An FAQ's no-match threshold derived from its own questions, without labelled queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# An FAQ whose intents have one question each gives no in-scope evidence, so it gets a fixed
# threshold per model: the highest multiple of 0.05 that cost at most 1 point of in-scope
# accuracy@1 on a calibration split of a one-question-per-intent FAQ (docs/faq.md, "Threshold
# without labels"): MiniLM on CLINC150 val, multilingual-e5-small on an LCQMC-built Chinese FAQ.
# e5 cosines sit far higher than MiniLM's, so one number cannot serve both. Other models: the
# cosine floor (everything matches) until `faq calibrate`, as before.
MODEL_DEFAULTS: dict[str, float] = {"all-MiniLM-L6-v2": 0.25, "multilingual-e5-small": 0.90}
FALLBACK_THRESHOLD = -1.0
# The threshold may reject at most this share of the FAQ's own questions that leave-one-out
# matches rightly: rejection costs in-scope accuracy at about this rate.
IN_SCOPE_LOSS = 0.02
MIN_IN_SCOPE = 10  # fewer leave-one-out matches than this are too few to place a threshold
MAX_PROBES = 2000  # questions used as probes (each against all): bounds the work at O(2000 n)
_BLOCK = 512
# Thresholds a re-import may derive again (a calibrated or configured one stands).
DERIVED_METHODS = frozenset({"leave-one-out", "model-default", "fallback"})


@dataclass(frozen=True, kw_only=True)
class DerivedThreshold:
    """A threshold and how it was chosen ("leave-one-out", "model-default" or "fallback")."""

    threshold: float
    method: str
    figures: dict[str, float] = field(default_factory=dict)


def default_threshold(model: str) -> DerivedThreshold:
    """The documented per-model threshold for an FAQ with one question per intent."""
    if model in MODEL_DEFAULTS:
        return DerivedThreshold(threshold=MODEL_DEFAULTS[model], method="model-default")
    return DerivedThreshold(threshold=FALLBACK_THRESHOLD, method="fallback")


def derive_threshold(vectors: np.ndarray, intents: Sequence[str], model: str, *,
                     seed: int = 0) -> DerivedThreshold:
    """Choose a threshold from the FAQ's questions alone.

    Each probe question is matched against the others: its best question of the same
    intent is an in-scope score (a paraphrase of a known intent), its best question of
    another intent a near-miss score (a message whose intent the FAQ lacks, at its closest).
    The threshold is the one that best separates the two (most in-scope matches kept plus
    near misses rejected), capped so that at most IN_SCOPE_LOSS of the in-scope matches that
    leave-one-out gets right fall below it. Near misses are harder than real out-of-scope
    messages, so the separation point is a conservative place to reject.

    Args:
        vectors: the questions' L2-normalised vectors [n, d] (inner product = cosine).
        intents: each question's intent.
        model: the model name, for the default when the FAQ gives too little evidence.
        seed: picks the probes when there are more than MAX_PROBES questions.

    Returns:
        The threshold, its method, and the figures it was chosen from.
    """
    labels = np.asarray(_codes(intents))
    if len(labels) != len(vectors):
        raise ValueError("one intent per question vector is needed")
    probes = np.arange(len(labels))
    if len(probes) > MAX_PROBES:
        probes = np.sort(np.random.default_rng(seed).choice(probes, MAX_PROBES, replace=False))
    same, other = _best_scores(np.asarray(vectors, dtype=np.float32), labels, probes)
    has_sibling = np.isfinite(same)
    right = has_sibling & (same > other)
    if int(right.sum()) < MIN_IN_SCOPE or not np.isfinite(other).any():
        return default_threshold(model)
    in_scope = np.sort(same[right])
    near = np.sort(other[np.isfinite(other)])
    separating = _separating(in_scope, near)
    cap = float(np.quantile(in_scope, IN_SCOPE_LOSS))
    threshold = min(separating, cap)
    return DerivedThreshold(threshold=threshold, method="leave-one-out", figures={
        "probes": float(len(probes)),
        "loo_accuracy_at_1": float(right.sum() / max(1, has_sibling.sum())),
        "in_scope_median": float(np.median(in_scope)),
        "near_miss_median": float(np.median(near)),
        "separating": separating,
        "in_scope_cap": cap,
        "near_miss_rejected": float(np.searchsorted(near, threshold, side="left") / len(near)),
    })


def _codes(intents: Sequence[str]) -> list[int]:
    index: dict[str, int] = {}
    return [index.setdefault(intent, len(index)) for intent in intents]


def _best_scores(vectors: np.ndarray, labels: np.ndarray,
                 probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: best cosine to another question of its intent, and to one of another intent."""
    same = np.full(len(probes), -np.inf)
    other = np.full(len(probes), -np.inf)
    for start in range(0, len(probes), _BLOCK):
        rows = probes[start:start + _BLOCK]
        sims = vectors[rows] @ vectors.T
        sims[np.arange(len(rows)), rows] = -np.inf  # leave the probe itself out
        mine = labels[rows][:, None] == labels[None, :]
        same[start:start + len(rows)] = np.where(mine, sims, -np.inf).max(axis=1)
        other[start:start + len(rows)] = np.where(mine, -np.inf, sims).max(axis=1)
    return same, other


def _separating(in_scope: np.ndarray, near: np.ndarray) -> float:
    """The threshold keeping the most in-scope scores (>= t) plus near misses (< t), weighted
    so both sets count equally whatever their sizes; ties go to the lowest threshold."""
    candidates = np.unique(np.concatenate([in_scope, near]))
    kept = (len(in_scope) - np.searchsorted(in_scope, candidates, side="left")) / len(in_scope)
    rejected = np.searchsorted(near, candidates, side="left") / len(near)
    return float(candidates[int(np.argmax(kept + rejected))])

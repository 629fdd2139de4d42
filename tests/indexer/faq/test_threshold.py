"""The FAQ threshold `faq import` derives from the FAQ itself, without labelled queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.encoding import Encoder
from indexer.faq import FaqEntry, calibrate_faq, import_faq, match_queries, read_faq, read_labelled
from indexer.faq.threshold import IN_SCOPE_LOSS, MODEL_DEFAULTS, derive_threshold
from storage import Collection
from storage.faiss.backend import FaissBackend
from storage.faq_store import read_faq_config
from tests.conftest import DATA

FAQ_DIR = DATA / "faq"


def _clusters(intents: int, per_intent: int, spread: float, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight clusters around random centres: one cluster per intent."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((intents, 64))
    points = np.repeat(centres, per_intent, axis=0) + spread * rng.standard_normal(
        (intents * per_intent, 64))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_threshold_lies_between_paraphrases_and_near_misses() -> None:
    vectors = _clusters(intents=20, per_intent=5, spread=0.3)
    intents = [f"i{n // 5}" for n in range(100)]
    derived = derive_threshold(vectors, intents, "some-model")
    assert derived.method == "leave-one-out"
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    mine = np.array(intents)[:, None] == np.array(intents)[None, :]
    same = np.where(mine, sims, -np.inf).max(axis=1)
    other = np.where(mine, -np.inf, sims).max(axis=1)
    # At most IN_SCOPE_LOSS of the paraphrases fall below it, most near misses do.
    assert np.mean(same < derived.threshold) <= IN_SCOPE_LOSS + 1e-9
    assert np.mean(other < derived.threshold) > 0.9
    assert derived.figures["loo_accuracy_at_1"] == 1.0


def test_one_question_per_intent_gets_the_model_default() -> None:
    vectors = _clusters(intents=30, per_intent=1, spread=0.0)
    intents = [f"i{n}" for n in range(30)]
    minilm = derive_threshold(vectors, intents, "all-MiniLM-L6-v2")
    assert (minilm.method, minilm.threshold) == ("model-default", MODEL_DEFAULTS["all-MiniLM-L6-v2"])
    unknown = derive_threshold(vectors, intents, "/models/my-own")
    assert (unknown.method, unknown.threshold) == ("fallback", -1.0)


def test_probes_are_sampled_on_large_faqs() -> None:
    vectors = _clusters(intents=500, per_intent=5, spread=0.3)
    derived = derive_threshold(vectors, [f"i{n // 5}" for n in range(2500)], "m")
    assert derived.figures["probes"] == 2000.0
    with pytest.raises(ValueError, match="one intent per question"):
        derive_threshold(vectors, ["a"], "m")


@pytest.mark.parametrize(("model_fixture", "faq", "labelled"), [
    ("minilm", "support_en.yaml", "labelled_en.jsonl"),
    ("e5", "support_zh.csv", "labelled_zh.csv"),
])
def test_import_rejects_out_of_scope_without_labels(
        tmp_path: Path, request: pytest.FixtureRequest, model_fixture: str, faq: str,
        labelled: str) -> None:
    encoder: Encoder = request.getfixturevalue(model_fixture)
    entries = read_faq(FAQ_DIR / faq)
    stats = import_faq(FaissBackend(tmp_path), "support", encoder, entries)
    config = read_faq_config(tmp_path / "support")
    assert config is not None and config.threshold_method == "leave-one-out"
    assert stats.threshold == config.threshold
    assert config.threshold_figures["probes"] == sum(len(e.questions) for e in entries)
    queries = read_labelled(FAQ_DIR / labelled)
    collection = Collection.open(tmp_path, "support")
    try:
        ranked, _ = match_queries(collection, encoder, [q.query for q in queries])
    finally:
        collection.close()
    for query, intents in zip(queries, ranked, strict=True):
        best = intents[0]
        if query.intent is None:
            assert best.score < config.threshold, query.query
        else:
            assert best.intent == query.intent and best.score >= config.threshold, query.query


def test_calibration_overrides_and_reimport_keeps_it(tmp_path: Path, minilm: Encoder) -> None:
    entries = read_faq(FAQ_DIR / "support_en.yaml")
    import_faq(FaissBackend(tmp_path), "support", minilm, entries)
    derived = read_faq_config(tmp_path / "support")
    assert derived is not None
    # A re-import with a changed FAQ derives the threshold again from the new questions.
    grown = [*entries, FaqEntry(intent="greeting", questions=("hello there", "hi, anyone here?"),
                                answer="Hello!")]
    import_faq(FaissBackend(tmp_path), "support", minilm, grown)
    rederived = read_faq_config(tmp_path / "support")
    assert rederived is not None and rederived.threshold_method == "leave-one-out"
    assert rederived.threshold_figures["probes"] == 17
    collection = Collection.open(tmp_path, "support")
    try:
        calibrated = calibrate_faq(collection, minilm, read_labelled(FAQ_DIR / "labelled_en.jsonl"))
    finally:
        collection.close()
    import_faq(FaissBackend(tmp_path), "support", minilm, entries)
    kept = read_faq_config(tmp_path / "support")
    assert kept is not None and kept.threshold_method == "calibrated"
    assert kept.threshold == calibrated.threshold and not kept.threshold_figures


def test_a_configured_threshold_is_kept(tmp_path: Path, minilm: Encoder) -> None:
    stats = import_faq(FaissBackend(tmp_path), "support", minilm, read_faq(FAQ_DIR / "support_en.yaml"),
                       default_threshold=0.25)
    config = read_faq_config(tmp_path / "support")
    assert config is not None and (config.threshold, config.threshold_method) == (0.25, "setting")
    assert "0.2500 (setting)" in stats.summary()

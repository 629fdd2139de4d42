"""scripts/evaluate_faq.py's pair groups (the LCQMC and BQ FAQs) and bench.py's bare reference."""

from __future__ import annotations

from scripts.bench import default_vs_bare, row
from scripts.evaluate_faq import pair_groups


def test_positive_pairs_chain_into_intents_with_one_member_held_out() -> None:
    rows = [["a1", "a2", "1"], ["a2", "a3", "1"], ["a3 ", "a4", "1"],  # a chain: one group of 4
            ["b1", "b2", "1"],                                          # 2 members: not an intent
            ["a1", "x1", "0"], ["b1", "x2", "0"], ["x1", "x3", "0"]]
    entries, calibrate, test, note = pair_groups(rows, "toy", oos=2, seed=0)
    assert calibrate == [] and len(entries) == 1 and "1 intents (toy" in note
    (entry,) = entries
    (held_out, intent), *oos = test
    assert intent == entry.intent and held_out not in entry.questions
    assert sorted([held_out, *entry.questions]) == ["a1", "a2", "a3", "a4"]
    # Out-of-scope sentences come from negative pairs and are in no group.
    assert len(oos) == 2 and {s for s, g in oos} <= {"x1", "x2", "x3"}
    assert all(g is None for _, g in oos)


def test_our_default_is_compared_with_the_faster_bare_backend() -> None:
    rows = [row("encode", "onnxruntime int8 (bare): short sentences/s", 500.0, "/s"),
            row("encode", "sentence-transformers bf16 (bare): short sentences/s", 420.0, "/s"),
            row("encode", "ours auto: short sentences/s", 1000.0, "/s")]
    compared = default_vs_bare(rows, ["onnxruntime int8 (bare)", "sentence-transformers bf16 (bare)"])
    assert compared["baseline"] == "onnxruntime int8 (bare)"
    assert compared["baseline_value"] == 500.0 and compared["ratio"] == 2.0

"""scripts/evaluate_training.py's Banking77 split: test queries never reach training or the FAQ."""

from __future__ import annotations

import csv
from pathlib import Path

from scripts.evaluate_training import _first, banking77


def test_the_training_part_grows_without_touching_the_test_queries(tmp_path: Path) -> None:
    (tmp_path / "banking77").mkdir()
    with (tmp_path / "banking77" / "train.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        for intent in ("card_arrival", "top_up_failed", "lost_card"):
            writer.writerows([f"{intent} question {n}", intent] for n in range(12))
    entries, test, _ = banking77(tmp_path, test_share=0.25, seed=0)
    faq, train = _first(entries, 2), _first(entries, 0)
    assert len(test) == 9 and [len(e.questions) for e in train] == [9, 9, 9]
    assert [len(e.questions) for e in faq] == [2, 2, 2]
    trained = {q for e in train for q in e.questions}
    assert {q for e in faq for q in e.questions} <= trained  # the FAQ is the training set's first
    assert not trained & {q for q, _ in test}
    assert _first(entries, 50) == entries

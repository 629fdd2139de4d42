"""Measure FAQ matching: CLINC150 (English, MiniLM) and an LCQMC-built Chinese FAQ (e5-small-q4).

Runs through the library (no HTTP): builds each FAQ collection in a temp dir with
`import_faq`, calibrates the no-match threshold on one split with `choose_threshold`,
then reports on a held-out split with that threshold.

Example:

    python scripts/evaluate_faq.py --data ../shared/data              # both sets
    python scripts/evaluate_faq.py --data ../shared/data --only clinc --per-intent 10

CLINC150 (CC BY 3.0): FAQ = up to --per-intent `train` queries per intent (fixed seed),
calibration = `val` + `oos_val`, report = `test` + `oos_test`.
LCQMC (research-only: read from --data, never copied): --pairs dev positive pairs,
one side the FAQ question (its own intent), the other the user query; queries split
half calibration / half test; --oos sentences from dev negatives that are not FAQ
questions or queries, split the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from indexer.encoding import E5_Q4, MINILM, Encoder, load_encoder
from indexer.faq import FaqEntry
from indexer.faq_build import Calibration, choose_threshold, evaluate_threshold, import_faq, match_queries
from storage import Collection

Labelled = list[tuple[str, str | None]]  # (query, intent or None = out of scope)


def run(name: str, encoder: Encoder, entries: list[FaqEntry], calibrate: Labelled,
        test: Labelled) -> tuple[Calibration, Calibration, float]:
    """Import, calibrate on `calibrate`, evaluate on `test`; returns both and the seconds."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        import_faq(Path(tmp), name, encoder, entries, default_threshold=0.0)
        collection = Collection.open(Path(tmp), name)
        try:
            calibrated = choose_threshold(_best(collection, encoder, calibrate),
                                          [g for _, g in calibrate])
            tested = evaluate_threshold(_best(collection, encoder, test), [g for _, g in test],
                                        calibrated.threshold)
        finally:
            collection.close()
    return calibrated, tested, time.perf_counter() - started


def _best(collection: Collection, encoder: Encoder, labelled: Labelled) -> list[tuple[str | None, float]]:
    ranked, _ = match_queries(collection, encoder, [q for q, _ in labelled])
    return [(r[0].intent, r[0].score) if r else (None, -1.0) for r in ranked]


def clinc(data: Path, per_intent: int, seed: int) -> tuple[list[FaqEntry], Labelled, Labelled, str]:
    raw = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in raw["train"]:
        by_intent[intent].append(text)
    rng = random.Random(seed)
    entries = [FaqEntry(intent=intent, questions=tuple(rng.sample(texts, min(per_intent, len(texts)))),
                        answer=f"answer for {intent}") for intent, texts in sorted(by_intent.items())]
    calibrate = [(t, i) for t, i in raw["val"]] + [(t, None) for t, _ in raw["oos_val"]]
    test = [(t, i) for t, i in raw["test"]] + [(t, None) for t, _ in raw["oos_test"]]
    note = (f"{len(entries)} intents x {per_intent} train questions; calibrate val "
            f"{len(raw['val'])}+{len(raw['oos_val'])} oos; test {len(raw['test'])}+"
            f"{len(raw['oos_test'])} oos")
    return entries, calibrate, test, note


def lcqmc(data: Path, pairs: int, oos: int, seed: int) -> tuple[list[FaqEntry], Labelled, Labelled, str]:
    with (data / "lcqmc" / "dev.tsv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if len(r) == 3]
    positives = [(a.strip(), b.strip()) for a, b, label in rows if label == "1"]
    negatives = [s.strip() for a, b, label in rows if label == "0" for s in (a, b)]
    rng = random.Random(seed)
    rng.shuffle(positives)
    used: set[str] = set()
    entries: list[FaqEntry] = []
    queries: Labelled = []
    for a, b in positives:
        if len(entries) == pairs:
            break
        if a == b or a in used or b in used:
            continue  # a sentence in two pairs would be two intents' question at once
        question, query = (a, b) if rng.random() < 0.5 else (b, a)
        intent = f"q{len(entries)}"
        entries.append(FaqEntry(intent=intent, questions=(question,), answer=f"answer {intent}"))
        queries.append((query, intent))
        used.update((a, b))
    pool = sorted({s for s in negatives if s and s not in used})
    out = [(s, None) for s in rng.sample(pool, min(oos, len(pool)))]
    half_q, half_o = len(queries) // 2, len(out) // 2
    calibrate: Labelled = queries[:half_q] + out[:half_o]
    test: Labelled = queries[half_q:] + out[half_o:]
    note = (f"{len(entries)} dev positive pairs (seed {seed}) -> {len(entries)} one-question intents; "
            f"{len(out)} oos sentences from dev negatives; half calibrate, half test")
    return entries, calibrate, test, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder with clinc150/ and lcqmc/ (default ../shared/data)")
    parser.add_argument("--only", choices=["clinc", "lcqmc"], default=None, help="run one set only")
    parser.add_argument("--per-intent", type=int, default=10, help="CLINC150 train questions per intent")
    parser.add_argument("--pairs", type=int, default=1000, help="LCQMC positive pairs (FAQ size)")
    parser.add_argument("--oos", type=int, default=300, help="LCQMC out-of-scope sentences")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = []
    if args.only in (None, "clinc"):
        entries, calibrate, test, note = clinc(args.data, args.per_intent, args.seed)
        measured = run("clinc", load_encoder(MINILM), entries, calibrate, test)
        results.append(("CLINC150", MINILM, note, *measured))
    if args.only in (None, "lcqmc"):
        entries, calibrate, test, note = lcqmc(args.data, args.pairs, args.oos, args.seed)
        measured = run("lcqmc", load_encoder(E5_Q4), entries, calibrate, test)
        results.append(("LCQMC FAQ", E5_Q4, note, *measured))
    print(f"{'set':10} {'model':26} {'acc@1':>6} {'accuracy':>8} {'oos P':>6} {'oos R':>6} "
          f"{'thresh':>7} {'queries':>8} {'sec':>5}")
    for name, model, _, calibrated, tested, seconds in results:
        print(f"{name:10} {model:26} {tested.accuracy_at_1:6.3f} {tested.accuracy:8.3f} "
              f"{tested.oos_precision:6.3f} {tested.oos_recall:6.3f} {calibrated.threshold:7.4f} "
              f"{tested.in_scope}+{tested.out_of_scope:<4} {seconds:5.0f}")
    for name, _, note, calibrated, _, _ in results:
        print(f"- {name}: {note}; calibration-split accuracy {calibrated.accuracy:.3f}")


if __name__ == "__main__":
    main()

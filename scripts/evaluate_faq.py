"""Measure FAQ matching: CLINC150 (English, MiniLM) and an LCQMC-built Chinese FAQ (e5-small).

Runs through the library (no HTTP): builds each FAQ collection in a temp dir with
`import_faq`, calibrates the no-match threshold on one split with `choose_threshold`,
then reports on a held-out split with that threshold.

Example:

    python scripts/evaluate_faq.py --data ../shared/data              # both sets
    python scripts/evaluate_faq.py --data ../shared/data --only clinc --per-intent 10
    python scripts/evaluate_faq.py --data ../shared/data --self-threshold   # no labels

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
from typing import Any

from indexer.encoding import E5, MINILM, Encoder, load_encoder
from indexer.faq.build import Calibration, choose_threshold, evaluate_threshold, import_faq
from indexer.faq.files import FaqEntry
from indexer.faq.match import match_queries
from storage import Collection
from storage.faiss.backend import FaissBackend
from storage.fusion import check_mode

Labelled = list[tuple[str, str | None]]  # (query, intent or None = out of scope)


def run(name: str, encoder: Encoder, entries: list[FaqEntry], calibrate: Labelled,
        test: Labelled, modes: list[str]) -> dict[str, tuple[Calibration, Calibration, float]]:
    """Import once; per mode, calibrate on `calibrate` and evaluate on `test` (and the seconds)."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        import_faq(FaissBackend(Path(tmp)), name, encoder, entries, default_threshold=0.0)
        collection = Collection.open(Path(tmp), name)
        try:
            for mode in modes:
                started = time.perf_counter()
                calibrated = choose_threshold(_best(collection, encoder, calibrate, mode),
                                              [g for _, g in calibrate])
                tested = evaluate_threshold(_best(collection, encoder, test, mode),
                                            [g for _, g in test], calibrated.threshold)
                results[mode] = (calibrated, tested, time.perf_counter() - started)
        finally:
            collection.close()
    return results


def _best(collection: Collection, encoder: Encoder, labelled: Labelled,
          mode: str) -> list[tuple[str | None, float]]:
    ranked, _ = match_queries(collection, encoder, [q for q, _ in labelled], mode=check_mode(mode))
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


def lcqmc_groups(data: Path, oos: int, seed: int) -> tuple[list[FaqEntry], Labelled, Labelled, str]:
    """A Chinese FAQ with several questions per intent: LCQMC dev sentences joined by positive
    pairs into groups; each group of 3 or more is an intent, one sentence held out as the query."""
    with (data / "lcqmc" / "dev.tsv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if len(r) == 3]
    return pair_groups(rows, "LCQMC dev", oos, seed)


def bq_groups(data: Path, oos: int, seed: int) -> tuple[list[FaqEntry], Labelled, Labelled, str]:
    """The same from the BQ corpus (a bank's customer-service questions, research-only) dev pairs."""
    with (data / "bq_corpus" / "dev.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.reader(handle) if len(r) == 3 and r[2] in ("0", "1")]
    return pair_groups(rows, "BQ corpus dev", oos, seed)


def pair_groups(rows: list[list[str]], label: str, oos: int, seed: int
                ) -> tuple[list[FaqEntry], Labelled, Labelled, str]:
    """Sentences joined by positive (a, b, "1") pairs into groups; each group of 3 or more is an
    intent with one member held out as its test query; negatives' other sentences are oos."""
    parent: dict[str, str] = {}

    def root(s: str) -> str:
        parent.setdefault(s, s)
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for a, b, positive in rows:
        if positive == "1" and a.strip() and b.strip():
            parent[root(a.strip())] = root(b.strip())
    groups: dict[str, list[str]] = defaultdict(list)
    for sentence in sorted(parent):
        groups[root(sentence)].append(sentence)
    rng = random.Random(seed)
    entries: list[FaqEntry] = []
    queries: Labelled = []
    for members in sorted((g for g in groups.values() if len(g) >= 3), key=lambda g: g[0]):
        rng.shuffle(members)
        intent = f"g{len(entries)}"
        entries.append(FaqEntry(intent=intent, questions=tuple(members[1:]), answer=f"answer {intent}"))
        queries.append((members[0], intent))
    negatives = sorted({s.strip() for a, b, positive in rows if positive == "0" for s in (a, b)}
                       - set(parent))
    out: Labelled = [(s, None) for s in rng.sample(negatives, min(oos, len(negatives)))]
    note = (f"{len(entries)} intents ({label} positive-pair groups of 3+, seed {seed}), "
            f"{sum(len(e.questions) for e in entries)} questions; test {len(queries)} held-out "
            f"group members + {len(out)} oos sentences from dev negatives")
    return entries, [], queries + out, note


def self_threshold(data: Path, which: str, model: str | None,
                   args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Dense matching on the test split with no threshold and with the one `faq import` derives."""
    label, default_model = SETS[which]
    model = model or default_model
    entries, _, test, note = build_set(data, which, args)
    encoder = load_encoder(model)
    with tempfile.TemporaryDirectory() as tmp:
        stats = import_faq(FaissBackend(Path(tmp)), which, encoder, entries)
        collection = Collection.open(Path(tmp), which)
        try:
            best = _best(collection, encoder, test, "dense")
        finally:
            collection.close()
    gold = [g for _, g in test]
    in_scope = [i for i, g in enumerate(gold) if g is not None]
    right = [i for i in in_scope if best[i][0] == gold[i]]
    kept = [i for i in right if best[i][1] >= stats.threshold]
    at = evaluate_threshold(best, gold, stats.threshold)
    return {"set": label, "model": model, "note": note, "threshold": stats.threshold,
            "method": stats.threshold_method, "acc@1_no_threshold": len(right) / len(in_scope),
            "acc@1_at_threshold": len(kept) / len(in_scope), "oos_rejected": at.oos_recall,
            "in_scope": at.in_scope, "out_of_scope": at.out_of_scope}


SETS = {"clinc": ("CLINC150", MINILM), "lcqmc": ("LCQMC FAQ", E5),
        "lcqmc_groups": ("LCQMC groups FAQ", E5)}


def build_set(data: Path, which: str, args: argparse.Namespace | None = None
              ) -> tuple[list[FaqEntry], Labelled, Labelled, str]:
    if which == "clinc":
        return clinc(data, getattr(args, "per_intent", 10), getattr(args, "seed", 0))
    if which == "lcqmc_groups":
        return lcqmc_groups(data, getattr(args, "oos", 300), getattr(args, "seed", 0))
    return lcqmc(data, getattr(args, "pairs", 1000), getattr(args, "oos", 300), getattr(args, "seed", 0))


def evaluate_modes(data: Path, which: str, model: str | None, modes: list[str],
                   args: argparse.Namespace | None = None, *,
                   encoder: Encoder | None = None) -> dict[str, Any]:
    """FAQ metrics per mode on one set, as a JSON-ready dict (used by scripts/evaluate.py)."""
    label, default_model = SETS[which]
    model = model or default_model
    entries, calibrate, test, note = build_set(data, which, args)
    measured = run(which, encoder or load_encoder(model), entries, calibrate, test, modes)
    return {"set": label, "model": model, "note": note, "modes": {
        mode: {"acc@1": tested.accuracy_at_1, "accuracy": tested.accuracy,
               "oos_precision": tested.oos_precision, "oos_recall": tested.oos_recall,
               "threshold": calibrated.threshold, "in_scope": tested.in_scope,
               "out_of_scope": tested.out_of_scope, "calibration_accuracy": calibrated.accuracy,
               "seconds": round(seconds, 1)}
        for mode, (calibrated, tested, seconds) in measured.items()}}


def print_faq(result: dict[str, Any]) -> None:
    print(f"{result['set']}  model={result['model']}: {result['note']}")
    print(f"{'mode':8} {'acc@1':>6} {'accuracy':>8} {'oos P':>6} {'oos R':>6} {'thresh':>8} "
          f"{'queries':>9} {'sec':>5}")
    for mode, m in result["modes"].items():
        print(f"{mode:8} {m['acc@1']:6.3f} {m['accuracy']:8.3f} {m['oos_precision']:6.3f} "
              f"{m['oos_recall']:6.3f} {m['threshold']:8.4f} {m['in_scope']:>4}+{m['out_of_scope']:<4} "
              f"{m['seconds']:5.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder with clinc150/ and lcqmc/ (default ../shared/data)")
    parser.add_argument("--only", choices=sorted(SETS), default=None, help="run one set only")
    parser.add_argument("--model", default=None, help="default: MiniLM for CLINC150, e5 for LCQMC")
    parser.add_argument("--modes", nargs="+", choices=["dense", "lexical", "hybrid"],
                        default=["dense", "lexical", "hybrid"])
    parser.add_argument("--per-intent", type=int, default=10, help="CLINC150 train questions per intent")
    parser.add_argument("--pairs", type=int, default=1000, help="LCQMC positive pairs (FAQ size)")
    parser.add_argument("--oos", type=int, default=300, help="LCQMC out-of-scope sentences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per set")
    parser.add_argument("--self-threshold", action="store_true",
                        help="no labels: report the threshold `faq import` derives (dense)")
    args = parser.parse_args()
    for which in [args.only] if args.only else sorted(SETS):
        if args.self_threshold:
            print(json.dumps(self_threshold(args.data, which, args.model, args)))
            continue
        result = evaluate_modes(args.data, which, args.model, args.modes, args)
        if args.json:
            print(json.dumps(result))
        else:
            print_faq(result)


if __name__ == "__main__":
    main()

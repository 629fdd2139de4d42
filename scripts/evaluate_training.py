"""Measure `semsearch train`: FAQ matching accuracy@1 of the base and the tuned model, side by side.

Example:

    python scripts/evaluate_training.py --data ../shared/data --set banking77 --per-intent 10 \
        --train-per-intent 30 --test-limit 1000 --batch-size 32 --learning-rate 1e-4
    python scripts/evaluate_training.py --data ../shared/data --set lcqmc_groups --epochs 1

banking77 (CC BY 4.0): train.csv split per intent with a fixed seed; --test-share of each
intent's utterances are the test queries, unseen by training; the rest is the training part.
Each intent's first --per-intent questions are the FAQ matched against, its first
--train-per-intent (the FAQ's included) are trained on. lcqmc_groups (research-only: read from
--data, never copied): scripts/evaluate_faq.py's LCQMC groups; the held-out member of each
group is its test query, the other members the FAQ. bq_groups: the same from the BQ corpus
(a bank's customer-service questions; research-only, read from --data). Both models are imported with
`import_faq` and matched with `match_queries` (dense, torch fp32 for both), as in the service.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_faq import bq_groups, lcqmc_groups  # noqa: E402

from indexer.encoding import E5, MINILM, load_encoder, resolve_model_name  # noqa: E402
from indexer.encoding.backends import model_path  # noqa: E402
from indexer.faq import import_faq, match_queries  # noqa: E402
from indexer.faq.files import FaqEntry  # noqa: E402
from indexer.training.card import TrainOptions  # noqa: E402
from indexer.training.data import read_train_file  # noqa: E402
from indexer.training.loop import train_model  # noqa: E402
from storage import Collection  # noqa: E402
from storage.faiss.backend import FaissBackend  # noqa: E402

Queries = list[tuple[str, str]]


def banking77(data: Path, test_share: float, seed: int) -> tuple[list[FaqEntry], Queries, str]:
    with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(r["text"].strip(), r["category"].strip()) for r in csv.DictReader(handle)]
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in rows:
        if text not in by_intent[intent]:
            by_intent[intent].append(text)
    rng = random.Random(seed)
    entries, test = [], []
    for intent, texts in sorted(by_intent.items()):
        rng.shuffle(texts)
        cut = max(1, int(len(texts) * test_share))
        test += [(t, intent) for t in texts[:cut]]
        entries.append(FaqEntry(intent=intent, questions=tuple(texts[cut:]), answer=intent))
    note = (f"{len(entries)} intents, {sum(len(e.questions) for e in entries)} FAQ/training "
            f"questions, {len(test)} unseen test queries (seed {seed})")
    return entries, test, note


def _first(entries: list[FaqEntry], count: int) -> list[FaqEntry]:
    """Each intent's first `count` questions (0: all); the FAQ's are the training set's first."""
    return [replace(e, questions=e.questions[:count]) for e in entries] if count else entries


def faq_accuracy(model: str, entries: list[FaqEntry], test: Queries) -> float:
    encoder = load_encoder(model, backend="torch")  # both models alike, and no ONNX export
    with tempfile.TemporaryDirectory() as tmp:
        import_faq(FaissBackend(Path(tmp)), "faq", encoder, entries, default_threshold=-1.0)
        collection = Collection.open(Path(tmp), "faq")
        try:
            ranked, _ = match_queries(collection, encoder, [q for q, _ in test])
        finally:
            collection.close()
    return sum(bool(r) and r[0].intent == gold for r, (_, gold) in zip(ranked, test, strict=True)) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--set", choices=["banking77", "lcqmc_groups", "bq_groups"],
                        default="banking77")
    parser.add_argument("--model", default=None,
                        help="default: MiniLM (banking77), e5 (the Chinese sets)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hard-negatives", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=TrainOptions.warmup)
    parser.add_argument("--test-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="keep the tuned model here")
    parser.add_argument("--per-intent", type=int, default=0,
                        help="FAQ questions per intent, matched against (0: all)")
    parser.add_argument("--train-per-intent", type=int, default=None,
                        help="questions per intent trained on, the FAQ's first (0: the whole "
                             "training part; default: the FAQ's)")
    parser.add_argument("--test-limit", type=int, default=0,
                        help="match at most this many test queries, drawn at random (0: all)")
    args = parser.parse_args()
    if args.set == "banking77":
        entries, test, note = banking77(args.data, args.test_share, args.seed)
    else:
        groups = lcqmc_groups if args.set == "lcqmc_groups" else bq_groups
        entries, _, all_test, note = groups(args.data, 0, args.seed)
        test = [(q, g) for q, g in all_test if g is not None]
    train_entries = _first(entries, args.per_intent if args.train_per_intent is None
                           else args.train_per_intent)
    entries = _first(entries, args.per_intent)
    if args.test_limit and len(test) > args.test_limit:
        test = random.Random(args.seed).sample(test, args.test_limit)
    base = resolve_model_name(args.model or (MINILM if args.set == "banking77" else E5))
    before = faq_accuracy(base, entries, test)
    print(f"{base}: FAQ accuracy@1 {before:.4f} on {len(test)} test queries before training",
          file=sys.stderr, flush=True)  # a run stopped during training still has its base
    with tempfile.TemporaryDirectory() as tmp:
        faq_file = Path(tmp) / "faq.jsonl"
        faq_file.write_text("".join(json.dumps({"intent": e.intent, "question": list(e.questions),
                                                "answer": e.answer}, ensure_ascii=False) + "\n"
                                    for e in train_entries), encoding="utf-8")
        output = args.output or Path(tmp) / "tuned"
        options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size,
                               learning_rate=args.learning_rate,
                               hard_negatives=args.hard_negatives, warmup=args.warmup,
                               seed=args.seed)
        started = time.perf_counter()
        result = train_model(read_train_file(faq_file, max_chars=100_000), base=base,
                             base_path=model_path(base, None), output=output, options=options,
                             overwrite=True)
        trained_in = time.perf_counter() - started
        after = faq_accuracy(str(output), entries, test)
    print(json.dumps({"set": args.set, "note": note, "model": base, "epochs": args.epochs,
                      "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                      "hard_negatives": args.hard_negatives, "warmup": args.warmup,
                      "per_intent": args.per_intent, "test_queries": len(test),
                      "train_questions": sum(len(e.questions) for e in train_entries),
                      "steps": result.steps, "train_seconds": round(trained_in, 1),
                      "held_out_before": result.accuracy_before,
                      "held_out_after": result.accuracy_after,
                      "stopped_early": result.stopped_early,
                      "test_acc@1_base": before, "test_acc@1_tuned": after}))


if __name__ == "__main__":
    main()

"""A `semsearch train` run's settings and results, and its model card (README.md, training.json)."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from indexer.training.data import TrainData
from storage.records import utc_now

CARD_JSON = "training.json"


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """Training settings; all of them are recorded in the model card."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup: float = 0.1  # share of the steps with a rising learning rate
    hard_negatives: int = 1  # mined per example with the base model, own group excluded
    val_fraction: float = 0.1
    patience: int = 2  # evaluations without improvement before stopping early
    eval_every: int = 0  # steps between evaluations; 0: at the end of each epoch
    checkpoint_every: int = 100  # steps between checkpoints
    max_length: int = 128  # tokens per text while training
    scale: float = 20.0  # cosine to logit, as sentence-transformers' MNRL
    seed: int = 0


@dataclass(kw_only=True)
class TrainResult:
    """What a finished run did: figures for the model card and the CLI."""

    output: str
    base: str
    device: str
    accuracy_before: float
    accuracy_after: float
    steps: int
    seconds: float
    stopped_early: bool
    resumed: bool
    history: list[dict[str, float]] = field(default_factory=list)


def write_card(folder: Path, data: TrainData, options: TrainOptions, result: TrainResult,
               train_examples: int, validation_examples: int) -> None:
    """Write README.md and training.json into the finished model folder.

    Args:
        folder: the model folder.
        data: the training file's fingerprint and format.
        options: the settings used.
        result: accuracy before / after on the held-out split, steps, time.
        train_examples: examples trained on.
        validation_examples: examples held out.
    """
    record = {
        "base_model": result.base, "trained_at": utc_now(), "device": result.device,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "data": {"sha256": data.sha256, "size_bytes": data.size_bytes, "format": data.fmt,
                 "examples": len(data.examples), "train_examples": train_examples,
                 "validation_examples": validation_examples},
        "settings": asdict(options),
        "metrics": {"held_out_accuracy_at_1_before": _figure(result.accuracy_before),
                    "held_out_accuracy_at_1_after": _figure(result.accuracy_after)},
        "steps": result.steps, "seconds": result.seconds, "stopped_early": result.stopped_early,
        "resumed": result.resumed, "history": result.history,
    }
    (folder / CARD_JSON).write_text(json.dumps(record, indent=2, ensure_ascii=False),
                                    encoding="utf-8")
    settings = "\n".join(f"| {k} | {v} |" for k, v in asdict(options).items())
    (folder / "README.md").write_text(f"""# Fine-tuned from {result.base}

Trained with `semsearch train` on {record['trained_at']} ({result.device}, {result.steps} steps,
{result.seconds:.0f} s{', stopped early' if result.stopped_early else ''}). Loss: multiple-negatives
ranking (in-batch negatives, same-group texts masked) plus hard negatives mined with the base model.

## Data

| | |
|---|---|
| format | {data.fmt} |
| sha256 | `{data.sha256}` |
| size | {data.size_bytes:,} bytes, {len(data.examples):,} examples |
| split | {train_examples:,} trained on, {validation_examples:,} held out |

## Held-out accuracy@1

| model | accuracy@1 |
|---|---|
| {result.base} (base) | {result.accuracy_before:.4f} |
| this model | {result.accuracy_after:.4f} |

## Settings

| setting | value |
|---|---|
{settings}

## Use

```bash
semsearch index docs.jsonl --collection docs --model <this folder>
semsearch faq import faq.yaml --name support --model <this folder>
```
""", encoding="utf-8")


def _figure(value: float) -> float | None:
    """None for NaN (nothing held out): JSON has no NaN."""
    return None if math.isnan(value) else value

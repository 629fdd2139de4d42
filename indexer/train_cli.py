"""`semsearch train`: the command that parses options and calls indexer.training."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli_options import device_option, settings_from_flags
from indexer.encoding import resolve_model_name
from indexer.encoding.backends import model_path
from indexer.encoding.devices import resolve_device
from indexer.settings import IndexerSettings
from indexer.training.card import TrainOptions
from indexer.training.data import read_train_file
from indexer.training.loop import train_model


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--model", "-m", default=None,
              help="Base model: alias (all-MiniLM-L6-v2, multilingual-e5-small), folder or hub id "
                   "[default SEMSEARCH_MODEL].")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Folder of the trained model; give it to index, faq import, serve as --model.")
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists (once training ends).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option("--batch-size", type=click.IntRange(2, 4096), default=32, show_default=True,
              help="Examples per step; the others' texts are each anchor's in-batch negatives.")
@click.option("--learning-rate", type=click.FloatRange(0, 1, min_open=True), default=2e-5,
              show_default=True)
@click.option("--hard-negatives", type=click.IntRange(0, 64), default=1, show_default=True,
              help="Negatives per example: the file's own first, then mined with the base model "
                   "(never a text of the example's own group).")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5), default=0.1, show_default=True,
              help="Examples held out for accuracy@1, early stopping and the model card.")
@click.option("--patience", type=click.IntRange(1), default=2, show_default=True,
              help="Evaluations without improvement before stopping early.")
@click.option("--eval-every", type=click.IntRange(0), default=0, show_default=True,
              help="Steps between evaluations; 0: at the end of each epoch.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=100, show_default=True,
              help="Steps between checkpoints; rerun the same command to resume.")
@click.option("--max-length", type=click.IntRange(8, 8192), default=128, show_default=True,
              help="Tokens per text while training.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(path: Path, model: str | None, output: Path, overwrite: bool, epochs: int,
          batch_size: int, learning_rate: float, hard_negatives: int, val_fraction: float,
          patience: int, eval_every: int, checkpoint_every: int, max_length: int, seed: int,
          device: str | None, quiet: bool) -> None:
    """Fine-tune a model on your pairs, triples, GTE-style data, FAQ or labelled queries.

    JSONL rows: {"query", "positive"} pairs, plus "negative" or "negatives" for triples;
    the GTE layout {"query", "positive_passages", "negative_passages"}; FAQ rows (intent,
    question, answer: one intent's questions are each other's positives; also CSV / YAML);
    labelled queries (query, intent). Bad rows are reported with file and line before
    anything is trained. The model card (README.md, training.json) records the base model,
    the data's hash and size, the settings and held-out accuracy@1 before and after.

    Example:

        \b
        semsearch train faq.yaml --model all-MiniLM-L6-v2 --output models/support-minilm
        semsearch train pairs.jsonl -m multilingual-e5-small -o models/zh --epochs 3
        semsearch faq import faq.yaml --name support --model models/support-minilm
    """
    settings = settings_from_flags(IndexerSettings, device=device)
    concrete = resolve_device(settings.device)
    if output.exists() and not overwrite:
        raise click.ClickException(f"output folder {output} exists; choose another --output or "
                                   "pass --overwrite")
    data = read_train_file(path, max_chars=settings.max_text_chars)
    base = resolve_model_name(model or settings.model)
    options = TrainOptions(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           hard_negatives=hard_negatives, val_fraction=val_fraction,
                           patience=patience, eval_every=eval_every,
                           checkpoint_every=checkpoint_every, max_length=max_length, seed=seed)
    result = train_model(data, base=base, base_path=model_path(base, settings.cache_dir),
                         output=output, options=options, device=concrete, overwrite=overwrite,
                         show_progress=not quiet, trust_remote_code=settings.trust_remote_code)
    click.echo(f"{output}: {len(data.examples)} examples ({data.fmt}), {result.steps} steps in "
               f"{result.seconds:.0f} s on {result.device}"
               f"{' (stopped early)' if result.stopped_early else ''}; held-out accuracy@1 "
               f"{result.accuracy_before:.4f} -> {result.accuracy_after:.4f}")
    if result.accuracy_after < result.accuracy_before:
        click.echo("warning: the tuned model matches the held-out split worse than the base "
                   "model; keep using the base, or train longer / on more data", err=True)

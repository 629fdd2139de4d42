"""`semsearch faq import|calibrate`: build an FAQ collection and set its no-match threshold."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli_options import (
    WAIT_SECONDS,
    SemsearchGroup,
    data_dir_option,
    device_option,
    settings_from_flags,
    wait_option,
)
from indexer.encoding import Encoder, load_encoder
from indexer.encoding.languages import mostly_cjk
from indexer.faq.build import calibrate_faq, import_faq
from indexer.faq.files import FAQ_FORMATS, FaqEntry, read_faq, read_labelled
from indexer.settings import FaqSettings
from storage.fusion import check_mode

_FORMAT = click.Choice(["auto", *FAQ_FORMATS])


def _settings(data_dir: Path | None, device: str | None = None) -> FaqSettings:
    return settings_from_flags(FaqSettings, data_dir=data_dir, device=device)


@click.group(cls=SemsearchGroup)
def faq() -> None:
    """FAQ matching: import an FAQ file into a collection, calibrate its threshold.

    Example:

        \b
        semsearch faq import faq.yaml --name support
        semsearch faq calibrate --name support labelled.jsonl
        semsearch faq calibrate --name support --mode hybrid labelled.jsonl
    """


@faq.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="FAQ collection to create or replace.")
@click.option("--model", "-m", default=None,
              help="Model alias, folder or hub id [default: the collection's; for a new FAQ "
                   "SEMSEARCH_CHINESE_MODEL if most questions are CJK, else SEMSEARCH_MODEL].")
@click.option("--format", "fmt", type=_FORMAT, default="auto", show_default=True,
              help="File format; auto goes by the suffix (.csv, .jsonl, .yaml).")
@wait_option
@device_option
@data_dir_option
def import_command(path: Path, name: str, model: str | None, fmt: str, wait: bool,
                   data_dir: Path | None, device: str | None = None) -> None:
    """Build or replace an FAQ collection from a CSV, JSONL or YAML file.

    Each row has `intent`, `question` (a string or a list; in CSV several rows may share
    an intent, or one cell may hold questions separated by "|") and `answer`. The file
    is checked before anything is written; the new FAQ replaces the old one in one commit.
    A new FAQ's no-match threshold is derived from its own questions (leave-one-out) until
    `faq calibrate` sets one from labelled queries.

    Example:

        \b
        semsearch faq import faq.csv --name support --model all-MiniLM-L6-v2
    """
    settings = _settings(data_dir, device)
    entries = read_faq(path, fmt)
    backend = settings.open_storage()
    try:
        if model is None and name in backend.names():
            model = backend.info(name).model.name
        model = model or _default_faq_model(entries, settings)
        encoder = _load(model, settings)
        stats = import_faq(backend, name, encoder, entries,
                           default_threshold=settings.faq_threshold,
                           lock_timeout=WAIT_SECONDS if wait else 0.0)
    finally:
        backend.close()
    click.echo(f"{name}: {stats.summary()}")


def _load(model: str, settings: FaqSettings) -> Encoder:
    return load_encoder(model, backend=settings.backend, threads=settings.threads,
                        cache_dir=settings.cache_dir, allow_download=settings.allow_download,
                        trust_remote_code=settings.trust_remote_code, device=settings.device)


def _default_faq_model(entries: list[FaqEntry], settings: FaqSettings) -> str:
    """SEMSEARCH_CHINESE_MODEL for an FAQ whose questions are mostly CJK (said on stderr)."""
    questions = [q for entry in entries for q in entry.questions]
    cjk = sum(mostly_cjk(q) for q in questions)
    if 2 * cjk <= len(questions) or settings.chinese_model == settings.model:
        return settings.model
    click.echo(f"{cjk} of {len(questions)} questions are mostly Chinese, Japanese or Korean: "
               f"using {settings.chinese_model} (--model chooses another)", err=True)
    return settings.chinese_model


@faq.command("calibrate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="FAQ collection to calibrate.")
@click.option("--format", "fmt", type=_FORMAT, default="auto", show_default=True,
              help="File format; auto goes by the suffix (.csv, .jsonl, .yaml).")
@click.option("--mode", type=click.Choice(["dense", "lexical", "hybrid"]), default="dense",
              show_default=True, help="Search mode to calibrate for; matching then uses it.")
@data_dir_option
def calibrate_command(path: Path, name: str, fmt: str, mode: str, data_dir: Path | None) -> None:
    """Choose and store the threshold that maximises accuracy on labelled queries.

    The file has `query` and `intent`; an empty, "oos" or null intent marks a query
    that no FAQ entry should answer. A query counts as right if it is in scope and
    matched to its intent, or out of scope and not matched.

    Example:

        \b
        semsearch faq calibrate --name support labelled.jsonl
        semsearch faq calibrate --name support --mode hybrid labelled.jsonl
    """
    settings = _settings(data_dir)
    labelled = read_labelled(path, fmt)
    backend = settings.open_storage()
    try:
        collection = backend.open(name)
        try:
            encoder = _load(collection.model.name, settings)
            result = calibrate_faq(collection, encoder, labelled,
                                   depth=settings.faq_search_depth, mode=check_mode(mode))
        finally:
            collection.close()
    finally:
        backend.close()
    click.echo(f"{name}: {result.in_scope} in-scope and {result.out_of_scope} out-of-scope queries")
    click.echo(f"accuracy@1 (in scope, no threshold): {result.accuracy_at_1:.4f}")
    click.echo(f"accuracy at threshold:               {result.accuracy:.4f}")
    click.echo(f"out-of-scope precision:              {result.oos_precision:.4f}")
    click.echo(f"out-of-scope recall:                 {result.oos_recall:.4f}")
    click.echo(f"threshold (stored):                  {result.threshold:.4f}")
    click.echo(f"mode (stored):                       {mode}")

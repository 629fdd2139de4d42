"""Indexer commands of the `semsearch` CLI: index, delete, collections."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm

from indexer.config import IndexerSettings
from indexer.encoding import Encoder, load_encoder
from indexer.models import IndexStats
from indexer.pipeline import (
    IndexOptions,
    SourceScan,
    delete_documents,
    index_documents,
    latest_rows,
    open_collection,
    scan_source,
)
from indexer.sources import FORMATS, SourceSpec
from storage import Collection, SemsearchError, check_collection, list_collections, read_info

F = TypeVar("F", bound=Callable[..., Any])
WAIT_SECONDS = 24 * 3600.0


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Folder of collections [env SEMSEARCH_DATA_DIR, default ./data].",
    )(func)


def wait_option(func: F) -> F:
    return click.option(
        "--wait", is_flag=True,
        help="If another process is writing the collection, wait for it instead of failing.",
    )(func)


def _settings(**overrides: Any) -> IndexerSettings:
    """Environment first, then the flags that were given (None means not given)."""
    return IndexerSettings(**{k: v for k, v in overrides.items() if v is not None})


class SemsearchGroup(click.Group):
    """Turn domain errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SemsearchError as exc:
            raise click.ClickException(exc.message) from exc


@click.group(cls=SemsearchGroup)
@click.version_option(package_name="semsearch")
def cli() -> None:
    """semsearch: semantic search over your documents (FAISS + SQLite + FastAPI).

    Example:

        semsearch index docs.jsonl --collection docs
        semsearch serve --port 8000
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--collection", "-c", required=True, help="Collection to create or update.")
@click.option("--model", "-m", default=None,
              help="Model alias, folder or hub id [default: the collection's, else "
                   "SEMSEARCH_MODEL or all-MiniLM-L6-v2].")
@click.option("--format", "fmt", type=click.Choice(["auto", *FORMATS]), default="auto",
              show_default=True, help="File format; auto goes by the file suffix.")
@click.option("--id-field", default=None, help="Field holding the document id [default: id, else _id].")
@click.option("--text-field", default="text", show_default=True,
              help="Field(s) holding the text; comma-separated fields are joined (title,text).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
              help="Documents per encode call [env SEMSEARCH_BATCH_SIZE, default 64].")
@click.option("--commit-every", type=click.IntRange(1), default=None,
              help="Documents per committed generation [default 2048].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@wait_option
@data_dir_option
def index(path: Path, collection: str, model: str | None, fmt: str, id_field: str | None,
          text_field: str, batch_size: int | None, commit_every: int | None, quiet: bool,
          wait: bool, data_dir: Path | None) -> None:
    """Index (upsert by id) a JSONL, CSV, TSV, Parquet or text file into a collection.

    Re-indexing the same file changes nothing; a changed text replaces its vector.
    The whole file is checked before anything is written. Changes are committed every
    --commit-every documents: after a crash, the same command resumes the job.

    Example:

        semsearch index corpus.jsonl --collection scifact --id-field _id --text-field title,text
    """
    settings = _settings(data_dir=data_dir, batch_size=batch_size, commit_every=commit_every)
    spec = SourceSpec(path=path, format=fmt, id_field=id_field,
                      text_fields=tuple(f.strip() for f in text_field.split(",") if f.strip()))
    scan = scan_source(spec)
    encoder = load_encoder(_model_for(settings, collection, model),
                           allow_download=settings.allow_download,
                           trust_remote_code=settings.trust_remote_code)
    options = IndexOptions(batch_size=settings.batch_size, commit_every=settings.commit_every,
                           lock_timeout=WAIT_SECONDS if wait else 0.0)
    stats, count = run_index_job(settings.data_dir, collection, encoder, spec, scan, options,
                                 label=f"indexing {path.name}", quiet=quiet)
    click.echo(f"{collection}: {stats.summary()}; {count} documents in collection")


def run_index_job(data_dir: Path, collection: str, encoder: Encoder, spec: SourceSpec,
                  scan: SourceScan, options: IndexOptions, *, label: str,
                  quiet: bool) -> tuple[IndexStats, int]:
    """Index a checked file into a collection with a progress bar on stderr.

    Returns:
        The run's counts, and the number of documents in the collection afterwards.
    """
    target = open_collection(data_dir, collection, encoder)
    try:
        with tqdm(total=scan.documents, unit="doc", disable=quiet, file=sys.stderr,
                  desc=label) as bar:
            stats = index_documents(target, encoder, latest_rows(spec, scan), options, bar.update)
        return stats, target.count
    finally:
        target.close()


def _model_for(settings: IndexerSettings, collection: str, model: str | None) -> str:
    """An explicit --model wins; else the collection's own model; else the default."""
    if model:
        return model
    if collection in list_collections(settings.data_dir):
        return read_info(settings.data_dir, collection).model.name
    return settings.model


@cli.command()
@click.option("--collection", "-c", required=True, help="Collection to delete from.")
@click.argument("ids", nargs=-1, required=True)
@wait_option
@data_dir_option
def delete(collection: str, ids: tuple[str, ...], wait: bool, data_dir: Path | None) -> None:
    """Delete documents by id (one commit). Exits 1 if any id was not found.

    Example:

        semsearch delete --collection docs doc-1 doc-2
    """
    settings = _settings(data_dir=data_dir)
    stats = delete_documents(Collection.open(settings.data_dir, collection), ids,
                             lock_timeout=WAIT_SECONDS if wait else 0.0)
    click.echo(f"{collection}: deleted {stats.deleted}")
    if stats.missing:
        raise click.ClickException(f"not found in '{collection}': {', '.join(stats.missing)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@data_dir_option
def collections(as_json: bool, data_dir: Path | None) -> None:
    """List collections with their model and document count.

    Example:

        semsearch collections --data-dir ./data
    """
    settings = _settings(data_dir=data_dir)
    rows: list[dict[str, Any]] = []
    for name in list_collections(settings.data_dir):
        try:
            info = read_info(settings.data_dir, name)
            rows.append({"name": name, "model": info.model.name, "count": info.count})
        except SemsearchError as exc:
            rows.append({"name": name, "model": None, "count": None, "error": exc.message})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no collections in {settings.data_dir}")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']}\tERROR: {row['error']}")
        else:
            click.echo(f"{row['name']}\t{row['model']}\t{row['count']}")


@cli.command()
@click.option("--collection", "-c", "names", multiple=True,
              help="Collection to check (repeatable) [default: all].")
@data_dir_option
def check(names: tuple[str, ...], data_dir: Path | None) -> None:
    """Verify collections: SQLite integrity, index file vs SQLite ids and counts, manifest.

    Exits 1 if any collection is inconsistent. Safe while other processes read or write.

    Example:

        semsearch check --collection docs
    """
    settings = _settings(data_dir=data_dir)
    failed = []
    names = names or tuple(list_collections(settings.data_dir))
    if not names:
        raise click.ClickException(f"no collections in {settings.data_dir}: nothing to check")
    for name in names:
        report = check_collection(settings.data_dir, name)
        status = "ok" if report.ok else "FAILED"
        click.echo(f"{name}: {status} (generation {report.generation}, {report.count} documents)")
        for warning in report.warnings:
            click.echo(f"  warning: {warning}")
        for error in report.errors:
            click.echo(f"  error: {error}", err=True)
        if not report.ok:
            failed.append(name)
    if failed:
        raise click.ClickException(f"inconsistent: {', '.join(failed)}")


def main() -> None:
    cli(prog_name="semsearch")


if __name__ == "__main__":
    main()

"""Indexer commands of the `semsearch` CLI: index, delete, collections, check, upgrade."""

from __future__ import annotations

import json
import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from indexer.chunking import ChunkRequest
from indexer.cli_options import (
    WAIT_SECONDS,
    SemsearchGroup,
    data_dir_option,
    device_option,
    encoder_backend_option,
    settings_from_flags,
    storage_options,
    wait_option,
)
from indexer.encoding import Encoder, load_encoder
from indexer.encoding.backends import BACKENDS
from indexer.encoding.devices import CPU, CUDA, resolve_device
from indexer.models import IndexStats
from indexer.pipeline import (
    IndexOptions,
    SourceScan,
    delete_documents,
    index_documents,
    latest_rows,
    open_collection,
    open_collection_in,
    scan_source,
)
from indexer.ray_cluster import RayEngine, require_ray
from indexer.ray_engine import index_documents_ray
from indexer.settings import IndexerSettings
from indexer.sources import FORMATS, SourceSpec
from indexer.train_cli import train
from storage import CollectionInfo, SemsearchError
from storage.backend import Backend, CollectionHandle
from storage.index_types import KINDS, IndexSpec, parse_params


def _settings(**flags: Any) -> IndexerSettings:
    return settings_from_flags(IndexerSettings, **flags)


@click.group(cls=SemsearchGroup)
def cli() -> None:
    """The indexer's commands: index, delete, collections, check.

    The `semsearch` command (search_api.cli) is built from this group's commands and the
    others'; nothing adds commands to this group from outside.

    Example:

        \b
        semsearch index docs.jsonl --collection docs
        semsearch serve --port 8000
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(train)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--collection", "-c", required=True, help="Collection to create or update.")
@click.option("--model", "-m", default=None,
              help="Model alias (all-MiniLM-L6-v2; multilingual-e5-small for Chinese), folder or "
                   "hub id [default: the collection's, else SEMSEARCH_MODEL or all-MiniLM-L6-v2].")
@click.option("--format", "fmt", type=click.Choice(["auto", *FORMATS]), default="auto",
              show_default=True, help="File format; auto goes by the file suffix.")
@click.option("--id-field", default=None, help="Field holding the document id [default: id, else _id].")
@click.option("--text-field", default="text", show_default=True,
              help="Field(s) holding the text; comma-separated fields are joined (title,text).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
              help="Documents per encode call [env SEMSEARCH_BATCH_SIZE, default 64].")
@click.option("--commit-every", type=click.IntRange(1), default=None,
              help="Documents per committed generation [default 2048].")
@encoder_backend_option
@device_option
@click.option("--engine", type=click.Choice(["local", "ray"]), default=None,
              help="Encode in this process, or on a Ray actor pool [env SEMSEARCH_ENGINE, default local].")
@click.option("--ray-address", default=None,
              help="Ray cluster to join (auto, ray://head:10001) [env SEMSEARCH_RAY_ADDRESS, "
                   "default: start a local Ray].")
@click.option("--ray-actors", type=click.IntRange(1), default=None,
              help="Encoder actors in the Ray pool [env SEMSEARCH_RAY_ACTORS, default one per CPU].")
@click.option("--index", "index_kind", type=click.Choice(KINDS), default=None,
              help="Index type: flat (exact), hnsw, ivf, or auto (flat below auto_threshold "
                   "documents, then ivf) [env SEMSEARCH_INDEX, default: the collection's, "
                   "auto for a new one].")
@click.option("--index-param", "index_params", multiple=True, metavar="KEY=VALUE",
              help="Index parameter, repeatable: M, efConstruction, efSearch, nlist, nprobe, "
                   "quantizer (sq8|pq), pq_m, rerank, auto_threshold, auto_kind "
                   "[env SEMSEARCH_INDEX_PARAMS, comma-separated].")
@click.option("--chunk-tokens", type=click.IntRange(8), default=None,
              help="Split documents into passages of at most this many model tokens, at sentence "
                   "ends [env SEMSEARCH_CHUNK_TOKENS, default: the collection's, 200 for a new one].")
@click.option("--chunk-overlap", type=click.IntRange(0), default=None,
              help="Tokens consecutive passages share [env SEMSEARCH_CHUNK_OVERLAP, default 50].")
@click.option("--no-chunk", is_flag=True, default=None,
              help="One vector per document, cut at the model's window (no passages).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@wait_option
@storage_options
@data_dir_option
def index(path: Path, collection: str, model: str | None, fmt: str, id_field: str | None,
          text_field: str, batch_size: int | None, commit_every: int | None, engine: str | None,
          ray_address: str | None, ray_actors: int | None, index_kind: str | None,
          index_params: tuple[str, ...], chunk_tokens: int | None, chunk_overlap: int | None,
          no_chunk: bool | None, quiet: bool, wait: bool, storage: str | None,
          milvus_uri: str | None, data_dir: Path | None,
          encoder_backend: str | None = None, device: str | None = None) -> None:
    """Index (upsert by id) a JSONL, CSV, TSV, Parquet or text file into a collection.

    Re-indexing the same file changes nothing; a changed text replaces its vector. Long
    documents are split into passages (search answers with the document and its best one).
    The whole file is checked before anything is written. Changes are committed every
    --commit-every documents: after a crash, the same command resumes the job.

    Example:

        \b
        semsearch index corpus.jsonl --collection scifact --id-field _id --text-field title,text
        semsearch index corpus.jsonl -c docs --storage milvus --milvus-uri http://localhost:19530
        semsearch index big.jsonl -c big --index hnsw --index-param M=16 --index-param efSearch=64
        semsearch index big.jsonl -c big --engine ray --ray-address auto
        semsearch index big.jsonl -c big --device cuda --batch-size 1024
        semsearch index reports.jsonl -c reports --chunk-tokens 128 --chunk-overlap 32
    """
    settings = _settings(data_dir=data_dir, batch_size=batch_size, commit_every=commit_every,
                         device=device,
                         engine=engine, ray_address=ray_address, ray_actors=ray_actors,
                         storage=storage, milvus_uri=milvus_uri, index=index_kind,
                         index_params=",".join(index_params) or None, chunk_tokens=chunk_tokens,
                         chunk_overlap=chunk_overlap, no_chunk=no_chunk)
    params = parse_params([settings.index_params])
    IndexSpec().updated(settings.index, params)  # a bad type or parameter fails before any work
    if settings.engine == "ray":
        require_ray()  # before the file check and the model load: say what to install at once
    spec = SourceSpec(path=path, format=fmt, id_field=id_field,
                      text_fields=tuple(f.strip() for f in text_field.split(",") if f.strip()),
                      limits=settings.input_limits())
    scan = scan_source(spec)
    backend = settings.open_storage()
    # On Ray the actors encode (on the cluster's GPUs where it has them); the driver's copy of
    # the model only names the collection's model and its dimension, so it stays on the CPU.
    on_ray = settings.engine == "ray"
    driver_device = CPU if on_ray else settings.device
    try:
        # A picklable loader: the ray engine's actors load the same model the same way.
        load = partial(load_encoder, _model_for(settings, collection, model, backend),
                       allow_download=settings.allow_download,
                       trust_remote_code=settings.trust_remote_code,
                       backend=_backend_for(driver_device, settings, collection, encoder_backend,
                                            backend),
                       cache_dir=settings.cache_dir, device=driver_device)
        encoder = load(threads=settings.threads)
        options = IndexOptions(batch_size=settings.batch_size, commit_every=settings.commit_every,
                               lock_timeout=WAIT_SECONDS if wait else 0.0,
                               commit_growth=settings.commit_growth,
                               index_kind=settings.index, index_params=params,
                               limits=settings.input_limits())
        ray = RayEngine(load_encoder=load, address=settings.ray_address, actors=settings.ray_actors,
                        actor_cpus=settings.ray_actor_cpus, device=settings.device,
                        gpu_backend=encoder_backend or "auto") if on_ray else None
        stats, count = run_index_job(settings.data_dir, collection, encoder, spec, scan, options,
                                     label=f"indexing {path.name}", quiet=quiet, ray=ray,
                                     backend=backend, chunking=settings.chunk_request())
    finally:
        backend.close()
    held = f" ({stats.stored_passages} passages)" if stats.stored_passages is not None else ""
    click.echo(f"{collection}: {stats.summary()}; {count} documents in collection{held}")


def run_index_job(data_dir: Path, collection: str, encoder: Encoder, spec: SourceSpec,
                  scan: SourceScan, options: IndexOptions, *, label: str,
                  quiet: bool, ray: RayEngine | None = None, backend: Backend | None = None,
                  chunking: ChunkRequest | None = None) -> tuple[IndexStats, int]:
    """Index a checked file into a collection with a progress bar on stderr (on Ray if `ray`).

    `backend` is where the collection lives (default: FAISS + SQLite in `data_dir`);
    `chunking` the passage options (None: one vector per document for a new collection).

    Returns:
        The run's counts, and the number of documents in the collection afterwards (its
        passages, if it has them, in the counts' `stored_passages`).
    """
    target: CollectionHandle = (
        open_collection(data_dir, collection, encoder, chunking) if backend is None
        else open_collection_in(backend, collection, encoder, chunking))
    try:
        with tqdm(total=scan.documents, unit="doc", disable=quiet, file=sys.stderr,
                  desc=label) as bar:
            if ray is None:
                stats = index_documents(target, encoder, latest_rows(spec, scan), options, bar.update)
            else:
                stats = index_documents_ray(target, encoder, lambda: latest_rows(spec, scan), ray,
                                            options, bar.update)
        stats.stored_passages = target.passage_count
        return stats, target.count
    finally:
        target.close()


def _backend_for(device: str, settings: IndexerSettings, collection: str, explicit: str | None,
                 backend: Backend) -> str:
    """An explicit --backend wins; else the one recorded in the collection; else the setting.

    On a GPU an unnamed backend is auto (fp16 there): the CPU backend a collection was built
    with does not run on it.
    """
    if explicit:
        return explicit
    if resolve_device(device) == CUDA:
        return "auto"
    info = _stored_info(backend, collection)
    stored = info.model.backend if info is not None else ""
    return stored if stored in BACKENDS else settings.backend


def _model_for(settings: IndexerSettings, collection: str, model: str | None,
               backend: Backend) -> str:
    """An explicit --model wins; else the collection's own model; else the default."""
    if model:
        return model
    info = _stored_info(backend, collection)
    return info.model.name if info is not None else settings.model


def _stored_info(backend: Backend, collection: str) -> CollectionInfo | None:
    """What the storage records of `collection` (None if it does not exist yet)."""
    return backend.info(collection) if collection in backend.names() else None


@cli.command()
@click.option("--collection", "-c", required=True, help="Collection to delete from.")
@click.argument("ids", nargs=-1, required=True)
@wait_option
@storage_options
@data_dir_option
def delete(collection: str, ids: tuple[str, ...], wait: bool, storage: str | None,
           milvus_uri: str | None, data_dir: Path | None) -> None:
    """Delete documents by id (one commit). Exits 1 if any id was not found.

    Example:

        \b
        semsearch delete --collection docs doc-1 doc-2
    """
    settings = _settings(data_dir=data_dir, storage=storage, milvus_uri=milvus_uri)
    backend = settings.open_storage()
    try:
        stats = delete_documents(backend.open(collection), ids,
                                 lock_timeout=WAIT_SECONDS if wait else 0.0)
    finally:
        backend.close()
    click.echo(f"{collection}: deleted {stats.deleted}")
    if stats.missing:
        more = f" and {len(stats.missing) - 20} more" if len(stats.missing) > 20 else ""
        raise click.ClickException(f"not found in '{collection}': "
                                   f"{', '.join(stats.missing[:20])}{more}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@storage_options
@data_dir_option
def collections(as_json: bool, storage: str | None, milvus_uri: str | None,
                data_dir: Path | None) -> None:
    """List collections with their model and document count.

    Example:

        \b
        semsearch collections --data-dir ./data
    """
    settings = _settings(data_dir=data_dir, storage=storage, milvus_uri=milvus_uri)
    rows: list[dict[str, Any]] = []
    backend = settings.open_storage()
    try:
        for name in backend.names():
            try:
                info = backend.info(name)
                rows.append({"name": name, "model": info.model.name, "count": info.count,
                             "passages": info.passages})
            except SemsearchError as exc:
                rows.append({"name": name, "model": None, "count": None, "error": exc.message})
    finally:
        backend.close()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no collections in {backend.describe()}")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']}\tERROR: {row['error']}")
        else:
            held = f" ({row['passages']} passages)" if row["passages"] is not None else ""
            click.echo(f"{row['name']}\t{row['model']}\t{row['count']}{held}")


@cli.command()
@click.option("--collection", "-c", "names", multiple=True,
              help="Collection to check (repeatable) [default: all].")
@storage_options
@data_dir_option
def check(names: tuple[str, ...], storage: str | None, milvus_uri: str | None,
          data_dir: Path | None) -> None:
    """Verify collections: SQLite integrity, index checksum and ids vs SQLite, manifest.

    Also removes temp files an interrupted write left (untouched for a minute; writers remove
    theirs when they start). On Milvus: the catalog row vs the documents collection (count,
    dimension, vectors). Exits 1 if any collection is inconsistent. Safe while other processes read or write.

    Example:

        \b
        semsearch check --collection docs
    """
    settings = _settings(data_dir=data_dir, storage=storage, milvus_uri=milvus_uri)
    backend = settings.open_storage()
    try:
        failed = _check_all(backend, names)
    finally:
        backend.close()
    if failed:
        raise click.ClickException(f"inconsistent: {', '.join(failed)}")


@cli.command()
@click.option("--collection", "-c", "names", multiple=True, required=True,
              help="Collection to upgrade (repeatable).")
@storage_options
@data_dir_option
def upgrade(names: tuple[str, ...], storage: str | None, milvus_uri: str | None,
            data_dir: Path | None) -> None:
    """Bring collections written by an older semsearch up to the current layout.

    On Milvus, a collection without the BM25 field (it answers mode dense only) is copied,
    vectors and all, into one with it: lexical and hybrid search then work. Stop writers of
    the collection first. FAISS collections are brought up to date when opened.

    Example:

        semsearch upgrade --collection docs --storage milvus
    """
    settings = _settings(data_dir=data_dir, storage=storage, milvus_uri=milvus_uri)
    backend = settings.open_storage()
    try:
        for name in names:
            try:
                click.echo(backend.upgrade(name))
            except SemsearchError as exc:
                raise click.ClickException(exc.message) from exc
    finally:
        backend.close()


def _check_all(backend: Backend, names: tuple[str, ...]) -> list[str]:
    """Check and print each named collection (all if none); returns the names that failed."""
    failed = []
    present = backend.names()
    missing = [name for name in names if name not in present]
    if missing:
        raise click.ClickException(f"collection '{missing[0]}' not found in {backend.describe()} "
                                   "(`semsearch collections` lists them)")
    names = names or tuple(present)
    if not names:
        raise click.ClickException(f"no collections in {backend.describe()}: nothing to check")
    for name in names:
        report = backend.check(name)
        status = "ok" if report.ok else "FAILED"
        click.echo(f"{name}: {status} (generation {report.generation}, {report.count} documents)")
        for warning in report.warnings:
            click.echo(f"  warning: {warning}")
        if report.swept:
            click.echo(f"  removed temp files of an interrupted write: {', '.join(report.swept)}")
        for error in report.errors:
            click.echo(f"  error: {error}", err=True)
        if not report.ok:
            failed.append(name)
    return failed

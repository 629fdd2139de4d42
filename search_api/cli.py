"""The `semsearch` CLI, composed here: the indexer's and FAQ commands plus `serve` and `demo`.

This is the composition root: the command groups of indexer.cli and indexer.faq_cli are read,
never changed, and `cli` is a new group built from their commands and the two defined here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from indexer import cli as indexer_cli
from indexer import demo as indexer_demo
from indexer.cli_options import (
    SemsearchGroup,
    data_dir_option,
    device_option,
    encoder_backend_option,
    settings_from_flags,
)
from indexer.encoding import Encoder
from indexer.encoding.devices import default_threads
from indexer.faq_cli import faq
from search_api.config import AUTO_WORKERS_MAX, ApiSettings, parse_served_names, parse_workers
from storage.factory import one_process_only


def _api_settings(served: tuple[str, ...] = (), **flags: Any) -> ApiSettings:
    if served:
        try:
            flags["served_model_names"] = parse_served_names(",".join(served))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--served-model-name") from exc
    return settings_from_flags(ApiSettings, **flags)


def _workers(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | str | None:
    """`--workers`: a count from 1 to 64, or auto."""
    try:
        return None if value is None else parse_workers(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command()
@click.option("--host", default=None, help="Interface [env SEMSEARCH_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port [env SEMSEARCH_PORT, default 8000].")
@click.option("--workers", callback=_workers, default=None, metavar="1-64|auto",
              help="Server processes sharing the port, 1-64 or auto (one per core, at most "
                   f"{AUTO_WORKERS_MAX}); indexes are memory-mapped, so they share one copy in "
                   "RAM [env SEMSEARCH_WORKERS, default auto].")
@click.option("--served-model-name", "served", multiple=True, metavar="NAME=MODEL",
              help="A model name clients send, answered by MODEL (repeatable, or comma-separated) "
                   "[env SEMSEARCH_SERVED_MODEL_NAMES].")
@encoder_backend_option
@device_option
@data_dir_option
def serve(host: str | None, port: int | None, workers: int | str | None, data_dir: Path | None,
          served: tuple[str, ...] = (), encoder_backend: str | None = None,
          device: str | None = None) -> None:
    """Serve the search API (docs at /docs) over the collections in the data dir.

    Example:

        \b
        semsearch serve --host 0.0.0.0 --port 8000 --data-dir ./data --workers 2 \
            --served-model-name text-embedding-3-small=multilingual-e5-small
    """
    run_server(_api_settings(host=host, port=port, data_dir=data_dir, workers=workers,
                             backend=encoder_backend, served=served, device=device))


@click.command()
@click.option("--host", default=None, help="Interface [default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default 8000].")
@click.option("--no-serve", is_flag=True, help="Only build the demo collection, then exit.")
@encoder_backend_option
@data_dir_option
def demo(host: str | None, port: int | None, no_serve: bool, data_dir: Path | None,
         encoder_backend: str | None = None) -> None:
    """Index the bundled demo corpus (300 SciFact abstracts) once, then serve the API.

    Example:

        \b
        semsearch demo     # then open http://127.0.0.1:8000/docs
    """
    settings = _api_settings(host=host, port=port, data_dir=data_dir, backend=encoder_backend)
    encoder = indexer_demo.ensure_demo_collection(settings.data_dir, settings)
    if settings.workers == "auto":
        # One process, which keeps the model it may have just loaded to build the demo.
        settings = settings.model_copy(update={"workers": 1})
    if not no_serve:
        run_server(settings, {encoder.name: encoder} if encoder else None)


@click.group(cls=SemsearchGroup, commands=[*indexer_cli.cli.commands.values(), faq, serve, demo])
@click.version_option(package_name="semsearch")
def cli() -> None:
    """semsearch: semantic search over your documents (FAISS + SQLite + FastAPI).

    Example:

        \b
        semsearch index docs.jsonl --collection docs
        semsearch serve --port 8000
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def run_server(settings: ApiSettings, encoders: dict[str, Encoder] | None = None) -> None:
    """Serve the API until stopped: one uvicorn process, or `settings.workers` forked workers.

    Args:
        settings: host, port, data dir, workers and the rest of the service's settings.
        encoders: models already loaded, by canonical name, shared instead of reloaded.
    """
    # The web stack loads only to serve: `semsearch index` and `check` start without it.
    import uvicorn

    from search_api.main import create_app

    workers = worker_count(settings)
    click.echo(f"serving {settings.data_dir} on http://{settings.host}:{settings.port} "
               f"with {workers} worker{'s' if workers > 1 else ''} (API docs at /docs)", err=True)
    if workers > 1:
        # Workers share the CPUs: without a thread setting, each would start one thread per core.
        threads = settings.threads or max(1, default_threads() // workers)
        _serve_workers(settings.model_copy(update={"threads": threads}), workers)
        return
    uvicorn.run(create_app(settings, encoders=encoders), host=settings.host, port=settings.port,
                log_level="info", timeout_graceful_shutdown=5)


def worker_count(settings: ApiSettings) -> int:
    """The server processes to run: `settings.workers`, where auto is one per core (at most
    AUTO_WORKERS_MAX) where forked workers run and the storage allows it, else 1.

    One process runs its Python (HTTP, routing, the search) under one interpreter lock, so on
    2 cores it served 32 concurrent clients at about 1.7x one client; two did 2.6x
    (docs/performance.md).
    """
    single = one_process_only(settings.storage, settings.milvus_uri)
    if settings.workers != "auto":
        if single and settings.workers > 1:
            raise click.UsageError(
                "milvus-lite's .db file can be open in one process only: serve it with "
                "--workers 1, or point SEMSEARCH_MILVUS_URI at a Milvus server for more workers")
        return settings.workers
    if single or sys.platform == "win32" or importlib.util.find_spec("uvicorn_worker") is None:
        return 1
    return min(default_threads(), AUTO_WORKERS_MAX)


def _serve_workers(settings: ApiSettings, workers: int) -> None:
    """Forked workers sharing the master's libraries (search_api.prefork); where gunicorn does
    not run (Windows), uvicorn's spawned workers, which build the app from SEMSEARCH_* variables."""
    from search_api.main import create_app

    try:
        from search_api.prefork import run_prefork
    except ImportError:
        import uvicorn

        os.environ.update({"SEMSEARCH_HOST": settings.host, "SEMSEARCH_PORT": str(settings.port),
                           "SEMSEARCH_DATA_DIR": str(settings.data_dir.resolve()),
                           "SEMSEARCH_BACKEND": settings.backend,
                           "SEMSEARCH_DEVICE": settings.device,
                           "SEMSEARCH_THREADS": str(settings.threads),
                           "SEMSEARCH_SERVED_MODEL_NAMES": ",".join(
                               f"{k}={v}" for k, v in settings.served_model_names.items())})
        uvicorn.run("search_api.main:create_app", factory=True, workers=workers,
                    host=settings.host, port=settings.port, log_level="info",
                    timeout_graceful_shutdown=5)
        return
    run_prefork(settings.model_copy(update={"workers": workers}), create_app)


def main() -> None:
    cli(prog_name="semsearch")


if __name__ == "__main__":
    main()

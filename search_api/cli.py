"""The full `semsearch` CLI: the indexer's commands plus `serve` and `demo`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

import indexer
from indexer.backends import default_threads
from indexer.chunking import ChunkRequest
from indexer.cli import cli, data_dir_option, encoder_backend_option, run_index_job
from indexer.config import RuntimeSettings
from indexer.encoding import Encoder, load_encoder
from indexer.pipeline import IndexOptions, scan_source
from indexer.sources import SourceSpec
from search_api.config import ApiSettings
from search_api.faq_cli import faq
from storage import list_collections, read_info

DEMO_COLLECTION = "demo"
DEMO_MODEL = "all-MiniLM-L6-v2"
DEMO_CORPUS = Path(indexer.__file__).parent / "demo" / "scifact_demo.jsonl"

cli.add_command(faq)


def _api_settings(host: str | None, port: int | None, data_dir: Path | None,
                  workers: int | None = None, backend: str | None = None) -> ApiSettings:
    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir, "workers": workers,
                                 "backend": backend}
    return ApiSettings(**{k: v for k, v in overrides.items() if v is not None})


@cli.command()
@click.option("--host", default=None, help="Interface [env SEMSEARCH_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port [env SEMSEARCH_PORT, default 8000].")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Server processes sharing the port; indexes are memory-mapped, so they share "
                   "one copy in RAM [env SEMSEARCH_WORKERS, default 1].")
@encoder_backend_option
@data_dir_option
def serve(host: str | None, port: int | None, workers: int | None, data_dir: Path | None,
          encoder_backend: str | None = None) -> None:
    """Serve the search API (docs at /docs) over the collections in the data dir.

    Example:

        semsearch serve --host 0.0.0.0 --port 8000 --data-dir ./data --workers 2
    """
    run_server(_api_settings(host, port, data_dir, workers, encoder_backend))


@cli.command()
@click.option("--host", default=None, help="Interface [default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default 8000].")
@click.option("--no-serve", is_flag=True, help="Only build the demo collection, then exit.")
@encoder_backend_option
@data_dir_option
def demo(host: str | None, port: int | None, no_serve: bool, data_dir: Path | None,
         encoder_backend: str | None = None) -> None:
    """Index the bundled demo corpus (300 SciFact abstracts) once, then serve the API.

    Example:

        semsearch demo     # then open http://127.0.0.1:8000/docs
    """
    settings = _api_settings(host, port, data_dir, backend=encoder_backend)
    encoder = ensure_demo_collection(settings.data_dir, settings)
    if not no_serve:
        run_server(settings, {encoder.name: encoder} if encoder else None)


def ensure_demo_collection(data_dir: Path, runtime: RuntimeSettings | None = None) -> Encoder | None:
    """Build the demo collection unless complete (a rerun resumes it); return the model if loaded."""
    spec = SourceSpec(path=DEMO_CORPUS, text_fields=("title", "text"))
    scan = scan_source(spec)
    if DEMO_COLLECTION in list_collections(data_dir):
        info = read_info(data_dir, DEMO_COLLECTION)
        if info.count >= scan.documents:
            click.echo(f"demo collection ready: {_holdings(info.count, info.passages)}", err=True)
            return None
    runtime = runtime or RuntimeSettings(backend="auto")
    encoder = load_encoder(DEMO_MODEL, backend=runtime.backend, threads=runtime.threads,
                           cache_dir=runtime.cache_dir)
    stats, count = run_index_job(data_dir, DEMO_COLLECTION, encoder, spec, scan, IndexOptions(),
                                 label="indexing demo", quiet=False, chunking=ChunkRequest())
    click.echo(f"{DEMO_COLLECTION}: {stats.summary()}", err=True)
    click.echo(f"{DEMO_COLLECTION}: {_holdings(count, stats.stored_passages)}", err=True)
    return encoder


def _holdings(documents: int, passages: int | None) -> str:
    """What a collection holds, in words: "300 documents → 684 passages" when it has passages."""
    if passages is None:
        return f"{documents} documents"
    return (f"{documents} documents → {passages} passages (long documents split at sentence ends; "
            "search answers with each document's best passage)")


def run_server(settings: ApiSettings, encoders: dict[str, Encoder] | None = None) -> None:
    import uvicorn

    from search_api.main import create_app

    click.echo(f"serving {settings.data_dir} on http://{settings.host}:{settings.port} "
               "(API docs at /docs)", err=True)
    if settings.workers > 1:
        # Workers share the CPUs: without a thread setting, each would start one thread per core.
        threads = settings.threads or max(1, default_threads() // settings.workers)
        _serve_workers(settings.model_copy(update={"threads": threads}))
        return
    uvicorn.run(create_app(settings, encoders=encoders), host=settings.host, port=settings.port,
                log_level="info", timeout_graceful_shutdown=5)


def _serve_workers(settings: ApiSettings) -> None:
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
                           "SEMSEARCH_THREADS": str(settings.threads)})
        uvicorn.run("search_api.main:create_app", factory=True, workers=settings.workers,
                    host=settings.host, port=settings.port, log_level="info",
                    timeout_graceful_shutdown=5)
        return
    run_prefork(settings, create_app(settings))


def main() -> None:
    cli(prog_name="semsearch")


if __name__ == "__main__":
    main()

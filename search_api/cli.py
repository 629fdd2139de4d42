"""The full `semsearch` CLI: the indexer's commands plus `serve` and `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import indexer
from indexer.cli import cli, data_dir_option, run_index_job
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


def _api_settings(host: str | None, port: int | None, data_dir: Path | None) -> ApiSettings:
    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    return ApiSettings(**{k: v for k, v in overrides.items() if v is not None})


@cli.command()
@click.option("--host", default=None, help="Interface [env SEMSEARCH_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port [env SEMSEARCH_PORT, default 8000].")
@data_dir_option
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the search API (docs at /docs) over the collections in the data dir.

    Example:

        semsearch serve --host 0.0.0.0 --port 8000 --data-dir ./data
    """
    run_server(_api_settings(host, port, data_dir))


@cli.command()
@click.option("--host", default=None, help="Interface [default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default 8000].")
@click.option("--no-serve", is_flag=True, help="Only build the demo collection, then exit.")
@data_dir_option
def demo(host: str | None, port: int | None, no_serve: bool, data_dir: Path | None) -> None:
    """Index the bundled demo corpus (300 SciFact abstracts) once, then serve the API.

    Example:

        semsearch demo     # then open http://127.0.0.1:8000/docs
    """
    settings = _api_settings(host, port, data_dir)
    encoder = ensure_demo_collection(settings.data_dir)
    if not no_serve:
        run_server(settings, {encoder.name: encoder} if encoder else None)


def ensure_demo_collection(data_dir: Path) -> Encoder | None:
    """Build the demo collection unless complete (a rerun resumes it); return the model if loaded."""
    spec = SourceSpec(path=DEMO_CORPUS, text_fields=("title", "text"))
    scan = scan_source(spec)
    if DEMO_COLLECTION in list_collections(data_dir):
        count = read_info(data_dir, DEMO_COLLECTION).count
        if count >= scan.documents:
            click.echo(f"demo collection ready: {count} documents", err=True)
            return None
    encoder = load_encoder(DEMO_MODEL)
    stats, _ = run_index_job(data_dir, DEMO_COLLECTION, encoder, spec, scan, IndexOptions(),
                             label="indexing demo", quiet=False)
    click.echo(f"{DEMO_COLLECTION}: {stats.summary()}", err=True)
    return encoder


def run_server(settings: ApiSettings, encoders: dict[str, Encoder] | None = None) -> None:
    import uvicorn

    from search_api.main import create_app

    click.echo(f"serving {settings.data_dir} on http://{settings.host}:{settings.port} "
               "(API docs at /docs)", err=True)
    uvicorn.run(create_app(settings, encoders=encoders), host=settings.host, port=settings.port,
                log_level="info", timeout_graceful_shutdown=5)


def main() -> None:
    cli(prog_name="semsearch")


if __name__ == "__main__":
    main()

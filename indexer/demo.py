"""The bundled demo collection: 300 SciFact abstracts indexed once, then reused."""

from __future__ import annotations

from pathlib import Path

import click

import indexer
from indexer.chunking import ChunkRequest
from indexer.cli import run_index_job
from indexer.encoding import Encoder, load_encoder
from indexer.pipeline import IndexOptions, scan_source
from indexer.settings import RuntimeSettings
from indexer.sources import SourceSpec
from storage import list_collections, read_info

DEMO_COLLECTION = "demo"
DEMO_MODEL = "all-MiniLM-L6-v2"
DEMO_CORPUS = Path(indexer.__file__).parent / "demo" / "scifact_demo.jsonl"



def ensure_demo_collection(data_dir: Path, runtime: RuntimeSettings | None = None) -> Encoder | None:
    """Build the demo collection unless complete (a rerun resumes it); return the model if loaded.

    Args:
        data_dir: folder of collections.
        runtime: how the encoder runs (default: backend auto).

    Returns:
        The loaded encoder, or None if the collection was already complete.
    """
    spec = SourceSpec(path=DEMO_CORPUS, text_fields=("title", "text"))
    scan = scan_source(spec)
    if DEMO_COLLECTION in list_collections(data_dir):
        info = read_info(data_dir, DEMO_COLLECTION)
        if info.count >= scan.documents:
            click.echo(f"demo collection ready: {_holdings(info.count, info.passages)}", err=True)
            return None
    runtime = runtime or RuntimeSettings(backend="auto")
    encoder = load_encoder(DEMO_MODEL, backend=runtime.backend, threads=runtime.threads,
                           cache_dir=runtime.cache_dir, device=runtime.device)
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

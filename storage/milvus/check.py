"""Integrity check of a collection kept in Milvus: catalog row, documents, vectors and counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pymilvus import MilvusClient, MilvusException

from storage.info import CheckReport
from storage.milvus import lexical, passages, schema
from storage.records import content_hash

ATTEMPTS = 5
BATCH = 1000


def check_milvus_collection(client: MilvusClient, read_row: Callable[[str], schema.CatalogRow | None],
                            name: str, where: str) -> CheckReport:
    """Verify that a Milvus collection agrees with its catalog row.

    Checks that the documents collection exists with the model's dimension, that every stored
    vector is a finite unit vector and every text matches its content hash, and that Milvus
    holds as many documents as the catalog says. A commit is several Milvus requests, so a
    disagreement seen while the catalog's generation moves on is a writer at work: look again.

    Args:
        client: the connected client.
        read_row: reads a collection's catalog row (None if there is none).
        name: the semsearch collection name.
        where: the Milvus, for messages.

    Returns:
        A report; `ok` is False when anything is inconsistent.
    """
    row = read_row(name)
    for _ in range(ATTEMPTS):
        report = CheckReport(name=name)
        if row is None:
            report.errors.append(f"collection '{name}' does not exist in {where}")
            return report
        try:
            _check_once(client, row, report)
        except MilvusException as exc:
            report.errors.append(f"milvus request failed: {exc.message}")
        now = read_row(name)
        if report.ok or now is None or now.generation == row.generation:
            return report
        row = now
    return report


def _check_once(client: MilvusClient, row: schema.CatalogRow, report: CheckReport) -> None:
    report.generation, report.count = row.generation, row.count
    if not client.has_collection(row.collection):
        report.errors.append(f"the catalog lists '{row.name}' but its Milvus collection "
                             f"{row.collection} is missing")
        return
    described = client.describe_collection(row.collection)
    if passages.chunking_of(described) is not None:
        _check_passages(client, row, passages.passages_of(described) or "", report)
        return
    dims = [f.get("params", {}).get("dim") for f in described["fields"] if f["name"] == "vector"]
    if dims != [row.model.dimension]:
        report.errors.append(f"{row.collection} has vector dimension {dims}, the model "
                             f"{row.model.dimension}")
        return
    if not lexical.has_lexical(described):
        report.warnings.append(f"{row.collection} has no BM25 field (an older semsearch wrote "
                               "it): it answers mode 'dense' only; `semsearch upgrade -c "
                               f"{row.name}` adds it")
    client.load_collection(row.collection)
    stored, bad_vectors, bad_hashes = 0, 0, 0
    iterator = client.query_iterator(row.collection, batch_size=BATCH, filter="",
                                     output_fields=["doc_id", "text", "content_hash", "vector"])
    try:
        while batch := iterator.next():
            stored += len(batch)
            vectors = np.asarray([item["vector"] for item in batch], dtype=np.float32)
            norms = np.linalg.norm(vectors, axis=1)
            bad_vectors += int(np.sum(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)))
            bad_hashes += sum(content_hash(item["text"]) != item["content_hash"] for item in batch)
    finally:
        iterator.close()
    if bad_vectors:
        report.errors.append(f"{bad_vectors} stored vectors are not finite unit vectors")
    if bad_hashes:
        report.errors.append(f"{bad_hashes} stored texts do not match their content hash")
    if stored != row.count:
        report.errors.append(
            f"the catalog says {row.count} documents (generation {row.generation}), Milvus holds "
            f"{stored}: a write was interrupted; re-running it completes it")


def _check_passages(client: MilvusClient, row: schema.CatalogRow, stored: str,
                    report: CheckReport) -> None:
    """A chunked collection: documents as above, and each its passages, of its current text."""
    if not client.has_collection(stored):
        report.errors.append(f"the passages collection {stored} of '{row.name}' is missing")
        return
    client.load_collection(row.collection)
    client.load_collection(stored)
    texts: dict[str, tuple[str, int]] = {}  # doc_id -> (content hash, characters)
    bad_hashes = 0
    for batch in _batches(client, row.collection, ["doc_id", "text", "content_hash"]):
        for item in batch:
            texts[item["doc_id"]] = (item["content_hash"], len(item["text"]))
            bad_hashes += content_hash(item["text"]) != item["content_hash"]
    bad_vectors, stale, outside, covered = 0, 0, 0, set()
    for batch in _batches(client, stored, ["doc_id", "content_hash", "end_char", "vector"]):
        bad_vectors += _bad_vectors(batch)
        for item in batch:
            doc = texts.get(item["doc_id"])
            if doc is None or doc[0] != item["content_hash"]:
                stale += 1
                continue
            covered.add(item["doc_id"])
            outside += int(item["end_char"]) > doc[1]
    problems = [(bad_vectors, "stored passage vectors are not finite unit vectors"),
                (bad_hashes, "stored texts do not match their content hash"),
                (outside, "passages end beyond their document's text"),
                (stale, "passages belong to no stored document text (an interrupted write: "
                        "re-running it completes it)"),
                (len(texts) - len(covered), "documents have no passages")]
    report.errors.extend(f"{count} {what}" for count, what in problems if count)
    if len(texts) != row.count:
        report.errors.append(
            f"the catalog says {row.count} documents (generation {row.generation}), Milvus holds "
            f"{len(texts)}: a write was interrupted; re-running it completes it")


def _batches(client: MilvusClient, collection: str,
             fields: list[str]) -> Iterator[list[dict[str, Any]]]:
    iterator = client.query_iterator(collection, batch_size=BATCH, filter="", output_fields=fields)
    try:
        while batch := iterator.next():
            yield batch
    finally:
        iterator.close()


def _bad_vectors(batch: list[dict[str, Any]]) -> int:
    norms = np.linalg.norm(np.asarray([item["vector"] for item in batch], dtype=np.float32), axis=1)
    return int(np.sum(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)))

"""Integrity check of a collection on disk: SQLite, the committed index file and the manifest."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from storage.collection import read_info
from storage.errors import SemsearchError
from storage.manifest import read_manifest
from storage.metadata import MetadataStore
from storage.records import DB_FILE
from storage.vector_index import FaissIndex


@dataclass(kw_only=True)
class CheckReport:
    name: str
    generation: int = 0
    count: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_collection(data_dir: Path, name: str) -> CheckReport:
    """Verify that the committed generation is whole and self-consistent.

    Checks SQLite's own integrity, that `index-<generation>.faiss` exists and holds exactly
    the row ids SQLite holds (same count, same dimension), that stored vectors are finite
    and unit length, and that manifest.json agrees (a manifest one generation behind is
    what a crash right after a commit leaves: a warning, fixed by the next write).

    Returns:
        A report; `ok` is False when anything is inconsistent.
    """
    report = CheckReport(name=name)
    try:
        info = read_info(data_dir, name)
    except SemsearchError as exc:
        report.errors.append(exc.message)
        return report
    folder = Path(data_dir) / name
    store = MetadataStore(folder / DB_FILE)
    try:
        store.conn.execute("BEGIN")  # one snapshot for every check below
        report.generation, report.count = store.generation(), store.count()
        _check_sqlite(store, report)
        rowids, vectors = _stored_vectors(store, info.model.dimension)
        store.conn.execute("COMMIT")
    except sqlite3.Error as exc:
        report.errors.append(f"SQLite error: {exc}")
        return report
    finally:
        store.close()
    _check_vectors(vectors, report)
    _check_index(folder, info.model.dimension, rowids, report)
    _check_manifest(folder, report, info.model.name)
    return report


def _check_sqlite(store: MetadataStore, report: CheckReport) -> None:
    result = store.conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        report.errors.append(f"SQLite integrity_check: {result}")


def _stored_vectors(store: MetadataStore, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    ids, chunks = [], []
    for batch_ids, batch_vectors in store.iter_vectors(dimension):
        ids.append(batch_ids)
        chunks.append(batch_vectors)
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, dimension), np.float32)
    return np.concatenate(ids), np.concatenate(chunks)


def _check_vectors(vectors: np.ndarray, report: CheckReport) -> None:
    norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.zeros(0)
    bad = int(np.sum(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)))
    if bad:
        report.errors.append(f"{bad} stored vectors are not finite unit vectors")


def _check_index(folder: Path, dimension: int, rowids: np.ndarray, report: CheckReport) -> None:
    path = folder / f"index-{report.generation}.faiss"
    if not path.exists():
        report.errors.append(f"{path.name} (the committed generation's index) is missing")
        return
    try:
        index = FaissIndex.load(path)
    except SemsearchError as exc:
        report.errors.append(exc.message)
        return
    if index.dimension != dimension:
        report.errors.append(f"{path.name} has dimension {index.dimension}, expected {dimension}")
    indexed = np.sort(index.ids())
    if index.count != len(rowids):
        report.errors.append(f"{path.name} holds {index.count} vectors, SQLite {len(rowids)} rows")
    elif not np.array_equal(indexed, np.sort(rowids)):
        missing = len(np.setdiff1d(rowids, indexed))
        report.errors.append(f"{path.name} and SQLite disagree on {missing} ids")
    if len(np.unique(indexed)) != len(indexed):
        report.errors.append(f"{path.name} holds duplicate ids")


def _check_manifest(folder: Path, report: CheckReport, model: str) -> None:
    try:
        manifest = read_manifest(folder)
    except SemsearchError as exc:
        report.warnings.append(f"{exc.message} (rewritten by the next write)")
        return
    if manifest is None:
        report.warnings.append("manifest.json is missing (rewritten by the next write)")
    elif manifest.model.name != model:
        report.errors.append(f"manifest.json names model '{manifest.model.name}', SQLite '{model}'")
    elif manifest.generation == report.generation - 1:
        report.warnings.append("manifest.json is one generation behind (a crash after a commit); "
                               "rewritten by the next write")
    elif (manifest.generation, manifest.count) != (report.generation, report.count):
        report.errors.append(
            f"manifest.json says generation {manifest.generation} with {manifest.count} documents, "
            f"SQLite generation {report.generation} with {report.count}")

"""Integrity check of a collection on disk: SQLite, the committed index file and the manifest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from storage.errors import SemsearchError
from storage.faiss import passages
from storage.faiss.collection import read_info
from storage.faiss.integrity import CHECKSUM_KEY, index_problem
from storage.faiss.metadata import MetadataStore
from storage.faiss.vector_index import FaissIndex
from storage.fileops import STALE_SECONDS, sweep_temp_files
from storage.info import CheckReport
from storage.manifest import read_manifest
from storage.records import DB_FILE, validate_name

ATTEMPTS = 5


def check_collection(data_dir: Path, name: str) -> CheckReport:
    """Verify that the committed generation is whole and self-consistent.

    Checks SQLite's own integrity, that `index-<generation>.faiss` exists and holds exactly
    the row ids SQLite holds (same count, same dimension), that stored vectors are finite
    and unit length, and that manifest.json agrees (a manifest one generation behind is
    what a crash right after a commit leaves: a warning, fixed by the next write).

    Returns:
        A report; `ok` is False when anything is inconsistent.
    """
    for _ in range(ATTEMPTS - 1):
        report = _check_once(Path(data_dir), name)
        if not report.retry:
            break
    else:
        report = _check_once(Path(data_dir), name)
    try:
        folder = Path(data_dir) / validate_name(name)
    except SemsearchError:
        return report
    if folder.is_dir():
        # Not under the write lock: holding it, even briefly, would fail a writer that does not
        # wait. Writers sweep their own at start.
        report.swept = sweep_temp_files(folder, older_than=STALE_SECONDS)
    return report


def _check_once(data_dir: Path, name: str) -> CheckReport:
    """One consistent look: SQLite snapshot, index file and manifest read inside it."""
    report = CheckReport(name=name)
    try:
        info = read_info(data_dir, name)
    except SemsearchError as exc:
        report.errors.append(exc.message)
        return report
    folder = data_dir / name
    store = MetadataStore(folder / DB_FILE)
    try:
        # Inside one read transaction, a writer that commits meanwhile cannot change what we
        # see in SQLite; its index file for our generation stays until it commits twice more.
        store.conn.execute("BEGIN")
        report.generation, report.count = store.generation(), store.count()
        _check_sqlite(store, report)
        rowids = _check_vectors(store, info.model.dimension, report)
        _check_index(folder, info.model.dimension, rowids, report, store.get_meta(CHECKSUM_KEY))
        _check_manifest(folder, report, info.model.name)
        store.conn.execute("COMMIT")
    except sqlite3.Error as exc:
        report.errors.append(f"SQLite error: {exc}")
    finally:
        store.close()
    return report


def _check_sqlite(store: MetadataStore, report: CheckReport) -> None:
    result = store.conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        report.errors.append(f"SQLite integrity_check: {result}")
    if store.chunked:
        report.errors.extend(passages.problems(store.conn))


def _check_vectors(store: MetadataStore, dimension: int, report: CheckReport) -> np.ndarray:
    """Every stored vector must be a finite unit vector; returns the row ids (streamed)."""
    ids, bad = [], 0
    try:
        for batch_ids, vectors in store.iter_vectors(dimension):
            ids.append(batch_ids)
            norms = np.linalg.norm(vectors, axis=1)
            bad += int(np.sum(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)))
    except ValueError as exc:  # a blob of the wrong length
        report.errors.append(f"stored vectors are malformed: {exc}")
    if bad:
        report.errors.append(f"{bad} stored vectors are not finite unit vectors")
    return np.concatenate(ids) if ids else np.zeros(0, np.int64)


def _check_index(folder: Path, dimension: int, rowids: np.ndarray, report: CheckReport,
                 recorded: str | None) -> None:
    path = folder / f"index-{report.generation}.faiss"
    index = _load_index(path, recorded, report)
    if index is None:
        # A writer two commits ahead removes this file: what we saw is stale, not damaged.
        report.retry = _generation_on_disk(folder) > report.generation + 1
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


def _load_index(path: Path, recorded: str | None, report: CheckReport) -> FaissIndex | None:
    """The committed index file if it exists, matches its checksum and parses; else an error."""
    if not path.exists():
        report.errors.append(f"{path.name} (the committed generation's index) is missing")
        return None
    problem = index_problem(path, recorded, report.generation)
    if problem is not None:
        report.errors.append(f"{problem}: damaged (readers rebuild it from SQLite; the next write "
                             "rewrites it)")
        return None
    try:
        return FaissIndex.load(path, mmap=True)  # no private copy of a large index
    except SemsearchError as exc:
        report.errors.append(exc.message)
        return None


def _generation_on_disk(folder: Path) -> int:
    store = MetadataStore(folder / DB_FILE)
    try:
        return store.generation()
    finally:
        store.close()


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
    elif report.generation < manifest.generation <= _generation_on_disk(folder):
        return  # a writer committed after our snapshot began: not a fault
    elif manifest.generation == report.generation - 1:
        report.warnings.append("manifest.json is one generation behind (a crash after a commit); "
                               "rewritten by the next write")
    elif (manifest.generation, manifest.count) != (report.generation, report.count):
        report.errors.append(
            f"manifest.json says generation {manifest.generation} with {manifest.count} documents, "
            f"SQLite generation {report.generation} with {report.count}")

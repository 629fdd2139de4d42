"""Generations: how a collection's committed state is loaded, staged, written and swept.

Commit protocol (the only way a collection changes):
1. in one SQLite transaction, apply the rows and bump `generation` to g+1;
2. write the FAISS index for g+1 to `index-<g+1>.faiss` (temp file + os.replace);
3. COMMIT the transaction: this is the commit point;
4. rewrite manifest.json and remove index files older than g.
A crash before 3 leaves generation g (its index file is still there); a crash
after 3 leaves g+1 with its index file in place. SQLite also keeps every vector,
so a missing or damaged index file is rebuilt from it: step 2's checksum, committed in
step 3, tells a reader whether the file is the one that was committed (storage.faiss.integrity).
A failed write removes its temp file and leaves generation g (storage.fileops).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.commit_plan import PlannedUpsert, ids_to_look_up, plan_commit
from storage.errors import StorageError
from storage.faiss import passages
from storage.faiss.folder import index_file
from storage.faiss.integrity import CHECKSUM_KEY, index_problem, recorded_checksum, unit_vectors
from storage.faiss.metadata import MetadataStore
from storage.faiss.vector_index import FaissIndex
from storage.fileops import write_failure
from storage.index_types import IndexSpec, plan
from storage.locks import ReadWriteLock
from storage.manifest import ModelInfo
from storage.records import CommitStats, DocumentInput, utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Staged:
    """The FAISS changes that the rows written in an open transaction call for."""

    add_ids: list[int]
    add_vectors: list[np.ndarray]
    remove_ids: list[int]
    fields: set[str]


# -- the protocol's steps ----------------------------------------------------
def stage(store: MetadataStore, upserts: Sequence[DocumentInput], deletes: Sequence[str],
          stats: CommitStats, dimension: int, name: str) -> Staged:
    """Write rows inside the open transaction (step 1); return the FAISS changes to make.

    Args:
        store: the writer's connection, inside an open transaction.
        upserts: documents to add or replace (by id).
        deletes: ids to delete.
        stats: counts of what changed, updated in place.
        dimension: the model's vector dimension.
        name: the collection's name (for messages).

    Returns:
        The rowids to add (with their vectors) and remove, and the metadata fields seen.
    """
    existing = store.existing(ids_to_look_up(upserts, deletes))
    plan = plan_commit(upserts, deletes, existing, dimension=dimension, name=name,
                       generation=stats.generation, chunked=store.chunked)
    staged = Staged(add_ids=[], add_vectors=[], remove_ids=[], fields=plan.fields)
    for item in plan.upserts:
        doc, old = item.doc, existing.get(item.doc.doc_id)
        if item.passages is not None:
            _stage_passages(store, item, old.rowid if old else None, staged)
            continue
        if old is None:
            assert item.vector is not None
            staged.add_ids.append(store.insert(doc.doc_id, doc.text, item.metadata_json,
                                               item.digest, item.vector))
            staged.add_vectors.append(item.vector)
            continue
        store.update(old.rowid, doc.text, item.metadata_json, item.digest, item.vector)
        if item.vector is not None:  # the text changed: its FAISS entry is replaced
            staged.remove_ids.append(old.rowid)
            staged.add_ids.append(old.rowid)
            staged.add_vectors.append(item.vector)
    gone = [existing[doc_id].rowid for doc_id in plan.deletes]
    store.delete(gone)
    staged.remove_ids.extend(passages.remove_of(store.conn, gone) if store.chunked else gone)
    for key in ("added", "updated", "unchanged", "deleted", "missing"):
        setattr(stats, key, getattr(plan.stats, key))
    return staged


def _stage_passages(store: MetadataStore, item: PlannedUpsert, rowid: int | None,
                    staged: Staged) -> None:
    """Write a new or changed document of a chunked collection: its row, then all its passages.

    Its old passages (if any) go in the same transaction, so a document never has passages
    of two versions of its text.
    """
    doc, new = item.doc, item.passages or []
    if rowid is None:
        rowid = store.insert(doc.doc_id, doc.text, item.metadata_json, item.digest,
                             passages.EMPTY_VECTOR)
    else:
        store.update(rowid, doc.text, item.metadata_json, item.digest, passages.EMPTY_VECTOR)
        staged.remove_ids.extend(passages.remove_of(store.conn, [rowid]))
    staged.add_ids.extend(passages.insert(store.conn, rowid, new))
    staged.add_vectors.extend(p.vector for p in new)


def apply_staged(store: MetadataStore, index: FaissIndex, spec: IndexSpec, staged: Staged,
                 stats: CommitStats, generation: int, dimension: int) -> FaissIndex:
    """Finish step 1 (bump the generation in the open transaction); return its index.

    Args:
        store: the writer's connection, inside the transaction `stage` wrote to.
        index: the writable index of the committed generation.
        spec: the index type and parameters of the new generation.
        staged: what `stage` returned.
        stats: the counts `stage` made.
        generation: the new generation's number.
        dimension: the model's vector dimension.

    Returns:
        The new generation's index (not yet saved).
    """
    store.add_fields(staged.fields)
    store.set_meta("generation", str(generation))
    store.set_meta("updated_at", utc_now())
    store.set_meta("index_spec", spec.to_json())
    return index.updated(
        spec, index.count + len(staged.add_ids) - len(staged.remove_ids),
        np.array(staged.add_ids, dtype=np.int64),
        np.stack(staged.add_vectors) if staged.add_vectors else np.zeros((0, dimension), np.float32),
        np.array(staged.remove_ids, dtype=np.int64), lambda: store.iter_vectors(dimension))


def seal(store: MetadataStore, index: FaissIndex, folder: Path, generation: int) -> None:
    """Steps 2 and 3: write the generation's index file, record its checksum, COMMIT.

    Args:
        store: the writer's connection, inside the transaction `apply_staged` wrote to.
        index: what `apply_staged` returned.
        folder: the collection's folder.
        generation: the new generation's number.
    """
    checksum = index.save(folder / index_file(generation))
    store.set_meta(CHECKSUM_KEY, recorded_checksum(generation, checksum))
    store.commit()


def drop_old_index_files(folder: Path, generation: int) -> None:
    """Step 4's sweep: remove index files older than the generation before `generation`."""
    for path in folder.glob("index-*.faiss*"):
        number = path.name.split("-", 1)[1].split(".", 1)[0]
        if number.isdigit() and int(number) < generation - 1:
            path.unlink(missing_ok=True)


class Generations:
    """The committed generation a handle serves, and the commit protocol that moves it on.

    storage.faiss.collection.Collection builds on this: it opens the folder, serves reads from
    `_index` under `_rw` and holds the write lock around `_commit`.
    """

    _index: FaissIndex  # set by the subclass from `_load_committed` once it can read
    _generation: int

    def __init__(self, folder: Path, name: str, model: ModelInfo) -> None:
        self.folder = folder
        self.name = name
        self.model = model
        self._rw = ReadWriteLock()
        self.rebuilds = 0  # index files found damaged and rebuilt from SQLite by this handle
        self._damaged_index = False  # the loaded generation's file is damaged (the writer repairs it)

    def _write_manifest(self) -> None:
        """Rewrite manifest.json (step 4); the subclass knows what it holds."""
        raise NotImplementedError

    # -- loading -------------------------------------------------------------
    def _load_committed(self, store: MetadataStore) -> tuple[FaissIndex, int]:
        """Load the index of the committed generation, rebuilding it from SQLite if needed."""
        store.conn.execute("BEGIN")  # one snapshot: generation, count and vectors agree
        try:
            generation, expected = store.generation(), store.vector_count()
            spec = IndexSpec.from_json(store.get_meta("index_spec"))
            index = self._load_index_file(generation, spec, store.get_meta(CHECKSUM_KEY))
            self._damaged_index = (index is None or index.count != expected
                                   or index.dimension != self.model.dimension)
            if index is None or self._damaged_index:
                self.rebuilds += 1
                dim = self.model.dimension
                index = FaissIndex.build(
                    plan(spec, expected), spec, dim,
                    lambda: unit_vectors(store.iter_vectors(dim), self.name, self.folder), expected)
            return index, generation
        finally:
            store.conn.execute("COMMIT")

    def _load_index_file(self, generation: int, spec: IndexSpec,
                         recorded: str | None) -> FaissIndex | None:
        """The committed index file if it is there, intact and readable; None means rebuild."""
        path = self.folder / index_file(generation)
        problem = index_problem(path, recorded, generation) if path.exists() else None
        if problem is not None:
            logger.error("collection '%s': %s; rebuilding its index from SQLite", self.name, problem)
            return None
        try:
            # Memory-mapped: every process serving this collection shares one copy in RAM.
            return FaissIndex.load(path, mmap=True, spec=spec) if path.exists() else None
        except StorageError:
            return None

    def _repair_index_file(self, store: MetadataStore) -> None:
        """Replace the committed generation's damaged index file with the index rebuilt from SQLite."""
        generation = self._generation
        try:
            checksum = self._index.save(self.folder / index_file(generation))
            store.begin()
            try:
                store.set_meta(CHECKSUM_KEY, recorded_checksum(generation, checksum))
                store.commit()
            except BaseException:
                store.rollback()
                raise
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            logger.warning("collection '%s': its damaged index file was not rewritten (%s); it is "
                           "rebuilt at each load until the next commit", self.name, exc)
            return
        self._damaged_index = False
        logger.info("collection '%s': rewrote %s from SQLite", self.name, index_file(generation))

    def _share_index(self) -> None:
        """After writing: swap the private index for a memory-mapped load of the committed file."""
        path = self.folder / index_file(self._generation)
        if self._index.mapped or not path.exists():
            return
        try:
            shared = FaissIndex.load(path, mmap=True, spec=self._index.spec)
        except StorageError:
            return
        with self._rw.writing():
            if shared.count == self._index.count and shared.layout == self._index.layout:
                self._index = shared

    # -- committing ----------------------------------------------------------
    def _commit(self, store: MetadataStore, upserts: Sequence[DocumentInput],
                deletes: Sequence[str], index: IndexSpec | None = None) -> CommitStats:
        """Run the commit protocol and serve the generation it made (or none, if nothing changed)."""
        stats = CommitStats(generation=self._generation)
        attempt = self._generation + 1
        dim = self.model.dimension
        with self._rw.writing():
            try:
                store.begin()
                staged = stage(store, upserts, deletes, stats, dim, self.name)
                spec = index or self._index.spec
                if not stats.changed and spec == self._index.spec:
                    store.rollback()
                    return stats
                generation = self._generation + 1
                self._index = apply_staged(store, self._index, spec, staged, stats, generation, dim)
                seal(store, self._index, self.folder, generation)
            except BaseException as exc:
                self._restore_committed(store, attempt)
                failure = write_failure(exc, f"generation {attempt} of collection '{self.name}'",
                                        self.folder)
                if failure is not None:
                    raise failure from exc
                raise
            self._generation = stats.generation = generation
        self._write_manifest()
        drop_old_index_files(self.folder, generation)
        return stats

    def _restore_committed(self, store: MetadataStore, attempt: int) -> None:
        """After a failed commit: roll back, reload what is committed, drop the attempt's index file."""
        try:
            store.rollback()
            # The in-memory index may hold uncommitted changes: go back to what is on disk.
            index_on_disk, self._generation = self._load_committed(store)
            self._index = index_on_disk.writable()
            if self._generation < attempt:
                (self.folder / index_file(attempt)).unlink(missing_ok=True)
        except (OSError, sqlite3.Error, RuntimeError, StorageError) as exc:
            # The disk refuses even this: a generation below any committed one makes the next
            # search or write reload from disk instead of using the uncommitted index.
            logger.error("collection '%s': could not reload after a failed commit (%s)", self.name, exc)
            self._generation = -1

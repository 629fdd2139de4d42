"""FaissIndex: a FAISS inner-product index (flat, HNSW or IVF) whose ids are SQLite row ids."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from storage.errors import StorageError
from storage.faiss.integrity import file_checksum
from storage.fileops import OPS, write_atomically
from storage.index_types import (
    MAX_TOMBSTONE_RATIO,
    MIN_POINTS_PER_CENTROID,
    TRAIN_SAMPLE,
    IndexSpec,
    Layout,
    SearchParams,
    keeps,
    plan,
)

logger = logging.getLogger(__name__)

Batches = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # a fresh pass of (ids, vectors)
BUILD_CHUNK = 65_536  # vectors per add call while building: lets FAISS parallelise HNSW inserts
# Zero-copy mmap of the vectors (flat codes, HNSW storage, IVF lists): processes that load the
# same file share its pages in the OS page cache instead of each holding a private copy.
MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
FEW_QUERIES = 20  # fewer queries than this are searched on the calling thread alone
EXACT_FILTER_MAX = 20_000  # filtered sets up to this size are searched exhaustively
_LIVE = faiss.IDSelectorRange(0, 1 << 62)  # every real row id; excludes HNSW tombstones (-1)


class FaissIndex:
    """One of three layouts, all answering inner-product top-k with SQLite row ids:

    - flat: IndexIDMap2 over IndexFlatIP (exact);
    - hnsw: IndexIDMap2 over IndexHNSWFlat. HNSW cannot remove vectors, so a deleted or
      replaced row's slot is tombstoned (its id set to -1, skipped by every search through
      an id selector) and the graph is rebuilt once tombstones pass MAX_TOMBSTONE_RATIO;
    - ivf: IndexIVFScalarQuantizer (SQ8) or IndexIVFPQ with the row ids stored in its lists.

    Inner product equals cosine similarity only because every vector stored or
    searched here is L2-normalised by the encoder; callers must keep it so.
    """

    def __init__(self, index: Any, *, path: Path | None = None, mapped: bool = False,
                 spec: IndexSpec | None = None) -> None:
        self._index = index  # faiss's stubs are incomplete
        self._path = path
        self.spec = spec or IndexSpec()  # the collection's parameters this index was loaded with
        self.mapped = mapped  # read-only pages of `path`; writable() gives a private copy
        self.layout = _layout_of(index)
        self._tombstones = _count_tombstones(index) if self.layout.kind == "hnsw" else 0

    # -- construction ----------------------------------------------------------
    @classmethod
    def create(cls, dimension: int) -> FaissIndex:
        """An empty exact (flat) index."""
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def build(cls, layout: Layout, spec: IndexSpec, dimension: int, batches: Batches,
              count: int) -> FaissIndex:
        """Build an index of `layout` from every stored vector.

        Args:
            layout: what to build (from storage.index_types.plan).
            spec: build parameters (efConstruction).
            dimension: vector dimension.
            batches: returns a fresh iterable of (row ids, vectors) over the stored rows;
                IVF reads it twice (training sample, then every vector).
            count: number of stored rows (for the training sample's stride).
        """
        metric = faiss.METRIC_INNER_PRODUCT
        if layout.kind == "hnsw":
            index = faiss.index_factory(dimension, f"IDMap2,HNSW{layout.m}", metric)
            inner: Any = faiss.downcast_index(index.index)  # type: ignore[attr-defined]
            inner.hnsw.efConstruction = spec.ef_construction
        elif layout.kind == "ivf":
            codes = f"PQ{layout.pq_m}x8" if layout.quantizer == "pq" else "SQ8"
            index = faiss.index_factory(dimension, f"IVF{layout.nlist},{codes}", metric)
            wanted = max(TRAIN_SAMPLE, MIN_POINTS_PER_CENTROID * layout.nlist)
            index.train(_sample(batches(), count, wanted, dimension))
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        built = cls(index, spec=spec)
        for ids, vectors in _rechunk(batches(), BUILD_CHUNK):
            built.add(ids, vectors)
        logger.info("built %s index of %d vectors", layout.kind, built.count)
        return built

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False, spec: IndexSpec | None = None) -> FaissIndex:
        """Read an index file; with `mmap`, vectors stay in the (shared) page cache."""
        try:
            index = faiss.read_index(str(path), MMAP_FLAGS if mmap else 0)
        except RuntimeError as exc:
            raise StorageError(f"cannot read FAISS index {path}: {exc}") from exc
        return cls(index, path=path, mapped=mmap, spec=spec)

    def writable(self) -> FaissIndex:
        """This index, or a private in-memory copy of it if it is memory-mapped."""
        if not self.mapped or self._path is None:
            return self
        return FaissIndex.load(self._path, mmap=False, spec=self.spec)

    def updated(self, spec: IndexSpec, count: int, add_ids: np.ndarray, add_vectors: np.ndarray,
                remove_ids: np.ndarray, stored: Batches) -> FaissIndex:
        """Apply one commit's changes: in place, or by a rebuild from the stored vectors.

        A rebuild happens when `spec` asks for another layout at the new size (e.g. `auto`
        crossing its threshold, an IVF that has outgrown its lists, a changed M) or when
        deletions have tombstoned too much of an HNSW graph.

        Args:
            spec: the collection's spec after this commit.
            count: live documents after this commit.
            add_ids, add_vectors: new or replaced rows.
            remove_ids: deleted or replaced rows.
            stored: every stored (row id, vector) after the commit, for a rebuild.

        Returns:
            The index to save for the new generation (self, or a new one).
        """
        if keeps(self.layout, spec, count):
            self.remove(remove_ids)
            self.add(add_ids, add_vectors)
            if not self.needs_compaction():
                self.spec = spec
                return self
        layout = plan(spec, count)
        logger.info("rebuilding the index as %s for %d documents", layout.kind, count)
        return FaissIndex.build(layout, spec, self.dimension, stored, count)

    # -- state -----------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def count(self) -> int:
        """Live vectors (tombstoned HNSW slots not counted)."""
        return int(self._index.ntotal) - self._tombstones

    @property
    def tombstone_ratio(self) -> float:
        total = int(self._index.ntotal)
        return self._tombstones / total if total else 0.0

    def needs_compaction(self) -> bool:
        return self.tombstone_ratio > MAX_TOMBSTONE_RATIO

    # -- changes ---------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._check_writable()
        self._index.add_with_ids(_as_matrix(vectors), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._check_writable()
        ids = np.asarray(ids, dtype=np.int64)
        if self.layout.kind != "hnsw":
            self._index.remove_ids(ids)
            return
        id_map = _id_map_view(self._index)  # writable view of the position -> row id table
        doomed = np.isin(id_map, ids) & (id_map >= 0)
        id_map[doomed] = -1
        self._tombstones += int(doomed.sum())

    def _check_writable(self) -> None:
        if self.mapped:
            raise RuntimeError("a memory-mapped index is read-only; use writable() first")

    # -- reading ---------------------------------------------------------------
    def ids(self) -> np.ndarray:
        """Every live id in the index (for integrity checks)."""
        if self.layout.kind == "ivf":
            lists = self._index.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(lists.nlist) if lists.list_size(i)]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return ids[ids >= 0]

    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None,
               params: SearchParams | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top candidates by inner product; ids of -1 mark empty slots.

        Approximate layouts return k * spec.rerank candidates: the caller re-scores them
        exactly from the stored vectors and keeps the best k.

        Args:
            queries: float32 [n, d], L2-normalised.
            k: hits wanted per query.
            allowed_ids: if given, only these ids can be returned (metadata filter).
            params: per-search efSearch / nprobe overrides of the collection's.

        Returns:
            (scores [n, m], ids [n, m]) with m >= k.
        """
        queries = _as_matrix(queries)
        kind, spec, params = self.layout.kind, self.spec, params or SearchParams()
        fetch = k if kind == "flat" else k * spec.rerank
        small_filter = allowed_ids is not None and len(allowed_ids) <= EXACT_FILTER_MAX
        if kind == "hnsw" and allowed_ids is not None and small_filter:
            return self._exact_among(queries, fetch, np.asarray(allowed_ids, dtype=np.int64))
        selector: Any = None
        if allowed_ids is not None:
            # Tombstones map to id -1, which no allowed set contains.
            selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
        elif self._tombstones:
            selector = _LIVE
        search_params: Any
        if kind == "hnsw":
            ef = max(params.ef_search or spec.ef_search, fetch)
            search_params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        elif kind == "ivf":
            # A small filtered set may sit in lists a normal probe skips: scan every list then
            # (the selector is checked before any distance is computed).
            nprobe = self.layout.nlist if small_filter else params.nprobe or spec.nprobe
            search_params = faiss.SearchParametersIVF(  # type: ignore[call-arg]
                nprobe=min(nprobe, self.layout.nlist))
        else:
            search_params = faiss.SearchParameters()
        if selector is not None:
            search_params.sel = selector
        with _threads(1 if len(queries) < FEW_QUERIES else None):
            scores, ids = self._index.search(queries, fetch, params=search_params)
        return scores, ids

    def _exact_among(self, queries: np.ndarray, k: int, allowed: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among a few ids: HNSW recall collapses when most nodes are filtered out."""
        present = allowed[np.isin(allowed, self.ids())]
        if len(present) == 0:
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        vectors = self._index.reconstruct_batch(present)  # IndexIDMap2 maps id -> latest slot
        scores = queries @ vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        ids = np.full((len(queries), k), -1, np.int64)
        top = np.full((len(queries), k), -np.inf, np.float32)
        ids[:, :order.shape[1]] = present[order]
        top[:, :order.shape[1]] = np.take_along_axis(scores, order, axis=1)
        return top, ids

    def save(self, path: Path) -> str:
        """Write to a temp file, fsync, then os.replace: readers never see a half file.

        A new file (new inode) each time also keeps processes that memory-mapped the old
        one safe: their pages stay valid until they drop it. On any failure (disk full, I/O
        error) the temp file is removed and the error raised.

        Returns:
            The checksum of the bytes written (storage.faiss.integrity.file_checksum), to be
            committed with the generation so that a reader can verify the file.
        """
        checksum = ""

        def write(tmp: Path) -> None:
            nonlocal checksum
            OPS.write_index(self._index, tmp)
            checksum = file_checksum(tmp)

        write_atomically(path, write)
        return checksum


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Limit FAISS's OpenMP threads for this calling thread only (the limit is per thread).

    A single query split over OpenMP threads costs more in synchronisation than it saves, and
    on a busy machine (other requests, other workers) the threads wait for CPUs: measured on
    2 busy cores, a flat 20k search took 67 ms with OpenMP and 10 ms without.
    """
    if count is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _layout_of(index: Any) -> Layout:
    if isinstance(index, faiss.IndexIVFPQ):
        return Layout(kind="ivf", nlist=int(index.nlist), quantizer="pq", pq_m=int(index.pq.M))
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return Layout(kind="ivf", nlist=int(index.nlist), quantizer="sq8")
    if isinstance(index, faiss.IndexIDMap2):
        inner: Any = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return Layout(kind="hnsw", m=int(inner.hnsw.nb_neighbors(1)))  # type: ignore[attr-defined]
        if isinstance(inner, faiss.IndexFlat):
            return Layout(kind="flat")
    raise StorageError(f"unsupported FAISS index type {type(index).__name__}")


def _id_map_view(index: Any) -> np.ndarray:
    view: np.ndarray = faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size())
    return view


def _count_tombstones(index: Any) -> int:
    return int(np.count_nonzero(faiss.vector_to_array(index.id_map) < 0))


def _sample(batches: Iterable[tuple[np.ndarray, np.ndarray]], count: int, wanted: int,
            dimension: int) -> np.ndarray:
    """Every `stride`-th stored vector, about `wanted` of them: spread over the whole corpus."""
    stride = max(1, count // max(wanted, 1))
    parts, offset = [], 0
    for _, vectors in batches:
        first = (-offset) % stride
        parts.append(np.asarray(vectors[first::stride], dtype=np.float32))
        offset += len(vectors)
    sample = np.concatenate(parts) if parts else np.zeros((0, dimension), np.float32)
    return np.ascontiguousarray(sample[:wanted])


def _rechunk(batches: Iterable[tuple[np.ndarray, np.ndarray]], size: int
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    ids: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    held = 0
    for batch_ids, batch_vectors in batches:
        ids.append(batch_ids)
        vectors.append(batch_vectors)
        held += len(batch_ids)
        if held >= size:
            yield np.concatenate(ids), np.concatenate(vectors)
            ids, vectors, held = [], [], 0
    if held:
        yield np.concatenate(ids), np.concatenate(vectors)


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(vectors), -1)

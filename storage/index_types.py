"""Index types of a collection (flat, HNSW, IVF, auto), their parameters and layout planning."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from storage.errors import SemsearchError

KINDS = ("auto", "flat", "hnsw", "ivf")
QUANTIZERS = ("sq8", "pq")
# Below this many documents `auto` keeps exact search: measured by scripts/scale_bench.py, a flat
# index answers a single top-10 query in a few ms at 50k and ~10-15 ms at 100k on 2 cores, with
# perfect recall and no build cost; past it exact search grows linearly while HNSW stays ~1 ms.
DEFAULT_AUTO_THRESHOLD = 100_000
TRAIN_SAMPLE = 50_000  # IVF trains on at most max(this, 39 * nlist) stored vectors
MIN_POINTS_PER_CENTROID = 39  # FAISS warns below this many training points per list
MAX_TOMBSTONE_RATIO = 0.2  # HNSW: rebuild from SQLite once this share of its slots is deleted

# Accepted spellings of each parameter, as given on the CLI or in SEMSEARCH_INDEX_PARAMS.
_ALIASES = {
    "m": "m", "efconstruction": "ef_construction", "efsearch": "ef_search", "nlist": "nlist",
    "nprobe": "nprobe", "quantizer": "quantizer", "pqm": "pq_m", "rerank": "rerank",
    "autothreshold": "auto_threshold", "autokind": "auto_kind",
}


class InvalidIndexSpec(SemsearchError):
    """An index type or parameter that does not exist or is out of range."""

    code = "invalid_index"
    status = 400


@dataclass(frozen=True, kw_only=True)
class IndexSpec:
    """What index a collection asks for; stored in its database so every reader agrees.

    Attributes:
        kind: auto | flat | hnsw | ivf.
        m: HNSW neighbours per node (memory ~ 8*m bytes per vector at level 0).
        ef_construction: HNSW candidate list while inserting (build time vs graph quality).
        ef_search: HNSW candidate list while searching (latency vs recall); per-search override.
        nlist: IVF lists; 0 chooses about 4*sqrt(n) when the index is trained.
        nprobe: IVF lists scanned per query (latency vs recall); per-search override.
        quantizer: IVF codes: sq8 (8-bit scalar, 4x smaller) or pq (product quantizer).
        pq_m: PQ sub-quantizers (dimension must be a multiple of it; 8 bits each).
        rerank: candidates fetched per hit wanted, re-scored exactly from the stored vectors.
        auto_threshold: documents from which `auto` leaves exact search.
        auto_kind: what `auto` uses past the threshold (hnsw or ivf).
    """

    kind: str = "auto"
    m: int = 16
    ef_construction: int = 40
    ef_search: int = 128
    nlist: int = 0
    nprobe: int = 32
    quantizer: str = "sq8"
    pq_m: int = 48
    rerank: int = 1
    auto_threshold: int = DEFAULT_AUTO_THRESHOLD
    # IVF-SQ8 beat HNSW (M 16, efConstruction 40) on recall, size and build time at both 100k
    # and 1M (README, "Measured"); at 1M the HNSW graph reached recall@10 0.46-0.70 only.
    auto_kind: str = "ivf"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidIndexSpec(f"index type '{self.kind}' is unknown; use one of {', '.join(KINDS)}")
        if self.auto_kind not in ("hnsw", "ivf"):
            raise InvalidIndexSpec(f"auto_kind must be hnsw or ivf, got '{self.auto_kind}'")
        if self.quantizer not in QUANTIZERS:
            raise InvalidIndexSpec(f"quantizer must be one of {', '.join(QUANTIZERS)}, "
                                   f"got '{self.quantizer}'")
        limits = {"m": (2, 256), "ef_construction": (1, 4096), "ef_search": (1, 65536),
                  "nlist": (0, 1 << 20), "nprobe": (1, 1 << 20), "pq_m": (1, 4096),
                  "rerank": (1, 100), "auto_threshold": (0, 1 << 40)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidIndexSpec(f"index parameter {name} must be an integer in "
                                       f"[{low}, {high}], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> IndexSpec:
        """The spec stored in a collection's database (None: the default, `auto`)."""
        if not text:
            return cls()
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def updated(self, kind: str | None = None, params: Mapping[str, str] | None = None) -> IndexSpec:
        """This spec with another kind and/or parameters (`key=value` strings, any spelling).

        Raises:
            InvalidIndexSpec: an unknown parameter or a value of the wrong type.
        """
        changes: dict[str, Any] = {}
        for key, raw in (params or {}).items():
            name = _ALIASES.get(key.lower().replace("_", "").replace("-", ""))
            if name is None:
                raise InvalidIndexSpec(f"unknown index parameter '{key}'; known: M, efConstruction, "
                                       "efSearch, nlist, nprobe, quantizer, pq_m, rerank, "
                                       "auto_threshold, auto_kind")
            if name in ("quantizer", "auto_kind"):
                changes[name] = raw.strip().lower()
                continue
            try:
                changes[name] = int(raw)
            except ValueError:
                raise InvalidIndexSpec(f"index parameter {key} must be an integer, got '{raw}'") from None
        if kind is not None:
            changes["kind"] = kind
        return replace(self, **changes)

    def resolved_kind(self, count: int) -> str:
        """The concrete index type (flat, hnsw or ivf) this spec means for `count` documents."""
        if self.kind == "auto":
            return self.auto_kind if count >= self.auto_threshold else "flat"
        return self.kind


@dataclass(frozen=True, kw_only=True)
class Layout:
    """The structure of a built index: what changing it requires a rebuild for."""

    kind: str
    m: int = 0
    nlist: int = 0
    quantizer: str = ""
    pq_m: int = 0


@dataclass(frozen=True, kw_only=True)
class SearchParams:
    """Per-search overrides of the stored efSearch / nprobe (None keeps the collection's)."""

    ef_search: int | None = None
    nprobe: int | None = None


def auto_nlist(count: int) -> int:
    """IVF lists for `count` vectors: about 4*sqrt(n), at least 1, trainable from the data."""
    nlist = max(1, int(4 * math.sqrt(max(count, 1))))
    return max(1, min(nlist, count // MIN_POINTS_PER_CENTROID))


def plan(spec: IndexSpec, count: int) -> Layout:
    """The layout to build for `count` documents.

    IVF needs MIN_POINTS_PER_CENTROID training vectors per list: a collection too small for
    the requested nlist stays exact (flat) until it has grown enough to train on.
    """
    kind = spec.resolved_kind(count)
    if kind == "hnsw":
        return Layout(kind="hnsw", m=spec.m)
    if kind == "ivf":
        nlist = spec.nlist or auto_nlist(count)
        if count < max(1, nlist * MIN_POINTS_PER_CENTROID) or nlist < 1:
            return Layout(kind="flat")
        pq_m = spec.pq_m if spec.quantizer == "pq" else 0
        return Layout(kind="ivf", nlist=nlist, quantizer=spec.quantizer, pq_m=pq_m)
    return Layout(kind="flat")


def keeps(current: Layout, spec: IndexSpec, count: int) -> bool:
    """Whether an index of layout `current` may stay for `count` documents (else rebuild).

    An IVF index with an automatic nlist is kept until the collection has about quadrupled
    (or halved) since it was trained, so retraining costs O(N) amortised, not per commit.
    """
    target = plan(spec, count)
    if target.kind != current.kind:
        return False
    if target.kind != "ivf" or spec.nlist:
        return target == current
    same_codes = (target.quantizer, target.pq_m) == (current.quantizer, current.pq_m)
    return same_codes and current.nlist / 2 <= target.nlist <= current.nlist * 2


def parse_params(items: Iterable[str]) -> dict[str, str]:
    """`key=value` strings (also comma-separated within one string) to a dict.

    Raises:
        InvalidIndexSpec: an item without '='.
    """
    params: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InvalidIndexSpec(f"index parameter '{part}' must look like key=value, "
                                       "e.g. M=32 or nprobe=16")
            params[key.strip()] = value.strip()
    return params

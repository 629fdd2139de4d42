"""Commit planning shared by every backend: what a batch of upserts and deletes changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np

from storage.records import CommitStats, DocumentInput, PassageInput, content_hash, metadata_json

Change = Literal["new", "text", "metadata"]


class StoredState(Protocol):
    """What a backend holds for one document id, as far as planning a commit needs it."""

    @property
    def content_hash(self) -> str: ...
    @property
    def metadata_json(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class PlannedUpsert:
    """One document the commit writes; `vector` is None for a metadata-only change.

    In a collection of passages the vectors are the passages' (`passages`), never `vector`.
    """

    doc: DocumentInput
    change: Change
    digest: str
    metadata_json: str
    vector: np.ndarray | None
    passages: list[PassageInput] | None = None


@dataclass(frozen=True, kw_only=True)
class CommitPlan:
    """Everything one commit writes, worked out (and checked) before anything is written."""

    upserts: list[PlannedUpsert]  # in the order the ids first appeared
    deletes: list[str]  # stored ids to delete
    fields: set[str]  # metadata fields the upserts carry
    stats: CommitStats


def ids_to_look_up(upserts: Sequence[DocumentInput], deletes: Sequence[str]) -> list[str]:
    """The ids whose stored state `plan_commit` needs (each once)."""
    return list(dict.fromkeys([*(doc.doc_id for doc in upserts), *deletes]))


def plan_commit(upserts: Sequence[DocumentInput], deletes: Sequence[str],
                existing: Mapping[str, StoredState], *, dimension: int, name: str,
                check_document: Callable[[DocumentInput], None] | None = None,
                generation: int = 0, chunked: bool = False) -> CommitPlan:
    """Decide what a commit changes, checking every new vector first.

    Args:
        upserts: documents to add or replace (by id).
        deletes: ids to delete.
        existing: the stored state of (at least) `ids_to_look_up(upserts, deletes)`.
        dimension: the model's vector dimension.
        name: the collection's name (for messages).
        check_document: a backend's own limits, applied to every upserted document.
        generation: the committed generation (the stats' starting value).
        chunked: the collection stores passages: new or changed documents carry their
            passages' vectors instead of one of their own.

    Returns:
        The plan; `plan.stats.changed` is False when the commit would change nothing.

    Raises:
        ValueError: a new or changed document's vector is missing, misshapen or not unit length.
    """
    # A repeated id: the last upsert wins; an id also deleted in this commit: the delete wins.
    doomed = set(deletes)
    latest = {doc.doc_id: doc for doc in upserts if doc.doc_id not in doomed}
    stats = CommitStats(generation=generation)
    planned: list[PlannedUpsert] = []
    fields: set[str] = set()
    for doc in latest.values():
        if check_document is not None:
            check_document(doc)
        digest, meta_json = content_hash(doc.text), metadata_json(doc.metadata)
        fields.update(doc.metadata)
        old = existing.get(doc.doc_id)
        if old is not None and old.content_hash == digest:
            if old.metadata_json == meta_json:
                stats.unchanged += 1
                continue
            planned.append(PlannedUpsert(doc=doc, change="metadata", digest=digest,
                                         metadata_json=meta_json, vector=None))
            stats.updated += 1
            continue
        change: Change = "new" if old is None else "text"
        if chunked:
            planned.append(PlannedUpsert(doc=doc, change=change, digest=digest,
                                         metadata_json=meta_json, vector=None,
                                         passages=checked_passages(doc, dimension, name)))
        else:
            planned.append(PlannedUpsert(doc=doc, change=change, digest=digest,
                                         metadata_json=meta_json,
                                         vector=checked_vector(doc, dimension, name)))
        stats.added += old is None
        stats.updated += old is not None
    upserted = {doc.doc_id for doc in upserts}
    gone = [doc_id for doc_id in dict.fromkeys(deletes) if doc_id in existing]
    stats.deleted = len(gone)
    stats.missing = [d for d in dict.fromkeys(deletes) if d not in existing and d not in upserted]
    return CommitPlan(upserts=planned, deletes=gone, fields=fields, stats=stats)


def checked_vector(doc: DocumentInput, dimension: int, name: str) -> np.ndarray:
    """`doc`'s vector as float32, checked for presence, shape and unit length.

    Raises:
        ValueError: the vector is missing, has the wrong shape or is not L2-normalised.
    """
    if doc.vector is None:
        raise ValueError(f"document '{doc.doc_id}' is new or changed but has no vector")
    vector = np.asarray(doc.vector, dtype=np.float32)
    if vector.shape != (dimension,):
        raise ValueError(f"vector for '{doc.doc_id}' has shape {vector.shape}, "
                         f"collection '{name}' expects ({dimension},)")
    # Inner product is cosine only for unit vectors; anything else would score wrongly.
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3:
        raise ValueError(f"vector for '{doc.doc_id}' is not L2-normalised (norm {norm})")
    return vector


def checked_passages(doc: DocumentInput, dimension: int, name: str) -> list[PassageInput]:
    """`doc`'s passages with checked unit vectors and spans inside its text.

    Raises:
        ValueError: no passages, a span outside the text, or a bad vector.
    """
    if not doc.passages:
        raise ValueError(f"document '{doc.doc_id}' is new or changed but has no passages "
                         f"(collection '{name}' splits documents into passages)")
    checked = []
    for passage in doc.passages:
        span = passage.span
        if not 0 <= span.start <= span.end <= len(doc.text):
            raise ValueError(f"passage {span.index} of '{doc.doc_id}' spans {span.start}:"
                             f"{span.end}, outside its {len(doc.text)} characters")
        vector = checked_vector(replace(doc, vector=passage.vector), dimension, name)
        checked.append(PassageInput(span=span, vector=vector))
    return checked

"""FAQ collections: import (atomic replace) and threshold calibration on labelled queries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from indexer.encoding import Encoder
from indexer.faq.files import FaqEntry, LabelledQuery
from indexer.faq.match import DEFAULT_SEARCH_DEPTH, QUESTION_KIND, match_queries
from indexer.faq.threshold import DERIVED_METHODS, DerivedThreshold, derive_threshold
from indexer.pipeline import attach_vectors, open_collection_in
from storage import DocumentInput
from storage.backend import Backend, CollectionHandle
from storage.faq_store import FaqConfig, NotAnFaq, require_faq
from storage.fusion import Fusion, Mode
from storage.records import utc_now

_ENCODE_BATCH = 64


@dataclass(frozen=True, kw_only=True)
class FaqImportStats:
    intents: int
    questions: int
    added: int
    updated: int
    unchanged: int
    deleted: int
    threshold: float
    threshold_method: str = "setting"

    def summary(self) -> str:
        return (f"{self.intents} intents, {self.questions} questions ({self.added} added, "
                f"{self.updated} updated, {self.unchanged} unchanged, {self.deleted} removed); "
                f"threshold {self.threshold:.4f} ({self.threshold_method})")


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The chosen threshold and the figures that justify it (fractions in [0, 1])."""

    threshold: float
    accuracy_at_1: float  # in-scope queries whose best intent is right, threshold ignored
    accuracy: float  # all queries at the threshold: right intent matched, or OOS not matched
    oos_precision: float  # of the queries not matched, the share that are out of scope
    oos_recall: float  # of the out-of-scope queries, the share not matched
    in_scope: int
    out_of_scope: int

    def as_dict(self) -> dict[str, float]:
        return {"accuracy_at_1": self.accuracy_at_1, "accuracy": self.accuracy,
                "oos_precision": self.oos_precision, "oos_recall": self.oos_recall,
                "in_scope": float(self.in_scope), "out_of_scope": float(self.out_of_scope)}


def question_id(intent: str, question: str) -> str:
    """Stable document id of a question: its intent and a hash of its text."""
    digest = hashlib.sha256(f"{intent}\x1f{question}".encode()).hexdigest()[:16]
    return f"{intent}::{digest}"


def import_faq(backend: Backend, name: str, encoder: Encoder, entries: Sequence[FaqEntry], *,
               default_threshold: float | None = None,
               lock_timeout: float = 0.0) -> FaqImportStats:
    """Build or replace an FAQ collection: one document per question, one commit.

    Questions are upserted by id (unchanged texts are not re-encoded) and every stored
    question no longer in `entries` is deleted in the same commit, so readers see either
    the old FAQ or the new one. A new FAQ's threshold is derived from its own questions
    (indexer.faq.threshold) unless `default_threshold` is given; a re-import derives it
    again only if it was derived, so a calibrated or configured threshold stands.

    Args:
        backend: the storage the FAQ lives in (storage.factory.open_backend).
        name: the FAQ collection.
        encoder: its model (a different model than the collection's is an error).
        entries: the parsed FAQ (see indexer.faq.files.read_faq).
        default_threshold: a fixed threshold for a new FAQ (SEMSEARCH_FAQ_THRESHOLD);
            None derives one from the FAQ (indexer.faq.threshold).
        lock_timeout: seconds to wait for another writer.

    Returns:
        Counts of what changed, the threshold in force and how it was chosen.
    """
    collection = open_collection_in(backend, name, encoder)
    try:
        config = collection.faq_config()
        if config is None and collection.count > 0:
            raise NotAnFaq(f"collection '{name}' exists and is not an FAQ collection; "
                           "choose another --name")
        docs = [DocumentInput(doc_id=question_id(e.intent, q), text=q,
                              metadata={"intent": e.intent, "answer": e.answer, "faq": True})
                for e in entries for q in e.questions]
        with collection.writer(timeout=lock_timeout) as writer:
            keep = {d.doc_id for d in docs}
            stale = sorted(collection.doc_ids() - keep)
            prepared, _ = attach_vectors(collection, encoder, docs, QUESTION_KIND, _ENCODE_BATCH)
            rederive = config is not None and default_threshold is None and \
                config.threshold_method in DERIVED_METHODS
            if config is None or rederive:
                derived = _threshold_for(encoder, prepared, default_threshold)
                fresh = config is None
                config = replace(config or FaqConfig(threshold=0.0, question_kind=QUESTION_KIND),
                                 threshold=derived.threshold, threshold_method=derived.method,
                                 threshold_figures=derived.figures)
                if fresh:
                    # Before the commit: a crash in between leaves an FAQ a re-import can finish.
                    collection.set_faq_config(config)
            commit = writer.commit(prepared, deletes=stale)
        if rederive:
            config = _store_unless_calibrated(collection, config)
        return FaqImportStats(intents=len(entries), questions=len(docs), added=commit.added,
                              updated=commit.updated, unchanged=commit.unchanged,
                              deleted=commit.deleted, threshold=config.threshold,
                              threshold_method=config.threshold_method)
    finally:
        collection.close()


def _threshold_for(encoder: Encoder, prepared: Sequence[DocumentInput],
                   fixed: float | None) -> DerivedThreshold:
    """The configured threshold, or one derived from the questions' vectors."""
    if fixed is not None:
        return DerivedThreshold(threshold=fixed, method="setting")
    missing = [i for i, d in enumerate(prepared) if d.vector is None]  # unchanged: not re-encoded
    vectors = [d.vector for d in prepared]
    for start in range(0, len(missing), _ENCODE_BATCH):
        batch = missing[start:start + _ENCODE_BATCH]
        encoded = encoder.encode([prepared[i].text for i in batch], QUESTION_KIND)
        for i, vector in zip(batch, encoded, strict=True):
            vectors[i] = vector
    return derive_threshold(np.asarray(vectors, dtype=np.float32),
                            [str(d.metadata["intent"]) for d in prepared], encoder.name)


def _store_unless_calibrated(collection: CollectionHandle, derived: FaqConfig) -> FaqConfig:
    """Store a re-derived threshold unless `faq calibrate` stored one meanwhile."""
    current = collection.faq_config()
    if current is not None and current.threshold_method not in DERIVED_METHODS:
        return current
    collection.set_faq_config(derived)
    return derived


def choose_threshold(best: Sequence[tuple[str | None, float]],
                     gold: Sequence[str | None]) -> Calibration:
    """The threshold that maximises accuracy over in-scope and out-of-scope queries.

    A query is right if it is in scope, matched (score >= threshold) and its best intent
    is the gold one, or if it is out of scope (gold None) and not matched. Accuracy only
    changes at the observed scores, so the candidates are: the lowest score (everything
    matched: -1), the midpoints between consecutive distinct scores (a margin on both sides),
    and just above the highest (nothing matched). Ties go to the lowest threshold.

    Args:
        best: per query, its best intent (None if the FAQ returned nothing) and score.
        gold: per query, the right intent, or None when it is out of scope.

    Returns:
        The threshold and the accuracy figures at it.
    """
    if not best or len(best) != len(gold):
        raise ValueError("calibration needs one (intent, score) per labelled query")
    scores = np.array([s for _, s in best], dtype=np.float64)
    in_scope = np.array([g is not None for g in gold])
    right = np.array([g is not None and p == g for (p, _), g in zip(best, gold, strict=True)])
    distinct = np.unique(scores)
    # Everything matched: the cosine floor, not the lowest score seen (which would reject any
    # paraphrase a little weaker than the labelled ones). Nothing matched: just above the top
    # score, unclipped (float32 cosines can exceed 1.0 by an ulp).
    candidates = np.concatenate([[min(-1.0, float(distinct[0]))],
                                 (distinct[:-1] + distinct[1:]) / 2,
                                 [np.nextafter(float(distinct[-1]), np.inf)]])
    right_scores = np.sort(scores[right])
    oos_scores = np.sort(scores[~in_scope])
    # matched = score >= t: right in-scope matches are those >= t, OOS rejections those < t.
    correct = (len(right_scores) - np.searchsorted(right_scores, candidates, side="left")
               + np.searchsorted(oos_scores, candidates, side="left"))
    threshold = float(candidates[int(np.argmax(correct))])
    return evaluate_threshold(best, gold, threshold)


def evaluate_threshold(best: Sequence[tuple[str | None, float]], gold: Sequence[str | None],
                       threshold: float) -> Calibration:
    """Accuracy@1, accuracy and out-of-scope precision / recall at a given threshold."""
    scores = np.array([s for _, s in best], dtype=np.float64)
    in_scope = np.array([g is not None for g in gold])
    right = np.array([g is not None and p == g for (p, _), g in zip(best, gold, strict=True)])
    matched = scores >= threshold
    correct = (in_scope & right & matched) | (~in_scope & ~matched)
    rejected = ~matched
    return Calibration(
        threshold=threshold,
        accuracy_at_1=_share(int(np.sum(right)), int(np.sum(in_scope))),
        accuracy=_share(int(np.sum(correct)), len(gold)),
        oos_precision=_share(int(np.sum(rejected & ~in_scope)), int(np.sum(rejected))),
        oos_recall=_share(int(np.sum(rejected & ~in_scope)), int(np.sum(~in_scope))),
        in_scope=int(np.sum(in_scope)), out_of_scope=int(np.sum(~in_scope)),
    )


def calibrate_faq(collection: CollectionHandle, encoder: Encoder, labelled: Sequence[LabelledQuery], *,
                  depth: int = DEFAULT_SEARCH_DEPTH, mode: Mode = "dense",
                  fusion: Fusion | None = None) -> Calibration:
    """Choose the FAQ's threshold on labelled queries and store it in its FAQ settings.

    Args:
        collection: an FAQ collection (NotAnFaq otherwise).
        encoder: its model.
        labelled: queries with their intent (None: out of scope).
        depth: questions retrieved per query before grouping by intent.
        mode: the search mode to calibrate for (stored with the threshold).
        fusion: how hybrid fuses the channels.

    Returns:
        The chosen threshold and its accuracy figures.
    """
    config = require_faq(collection.faq_config(), collection.name)
    ranked, _ = match_queries(collection, encoder, [q.query for q in labelled], depth=depth,
                              mode=mode, fusion=fusion)
    best = [(r[0].intent, r[0].score) if r else (None, -1.0) for r in ranked]
    calibration = choose_threshold(best, [q.intent for q in labelled])
    collection.set_faq_config(replace(
        config, threshold=calibration.threshold, calibration=calibration.as_dict(), mode=mode,
        calibrated_at=utc_now(), threshold_method="calibrated", threshold_figures={}))
    return calibration


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0

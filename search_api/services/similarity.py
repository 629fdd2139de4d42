"""Sentence similarity: cosine of L2-normalised vectors, for a pair or sources × candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.encoding import EncodedBatch
from indexer.encoding.languages import mostly_cjk
from search_api.config import ApiSettings
from search_api.services.model_access import resolve_allowed
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.text_checks import check_text, check_texts


@dataclass(frozen=True, kw_only=True)
class PairScore:
    model: str
    similarity: float
    truncated: tuple[bool, bool]


@dataclass(frozen=True, kw_only=True)
class ManyScores:
    model: str
    matrix: list[list[float]]
    """Row i: source i against every candidate, in order."""
    source_truncated: list[bool]
    candidate_truncated: list[bool]
    embeddings: list[list[float]] | None
    """Sources then candidates, when asked for."""


def _cosine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    # Inner product equals cosine only because encoders return L2-normalised vectors;
    # float64 and the clip keep rounding from reporting e.g. 1.0000001 for identical texts.
    product = left.astype(np.float64) @ right.astype(np.float64).T
    return np.clip(product, -1.0, 1.0)


class SimilarityService:
    """Scores sentences against each other with one allowed model.

    Every side is encoded as a query (kind="query"), so that sim(a, b) == sim(b, a) and a
    pair scores the same in both request shapes, also with models that prefix queries and
    passages differently (e5).
    """

    def __init__(self, settings: ApiSettings, collections: CollectionRegistry,
                 encoders: EncoderRegistry) -> None:
        self._settings = settings
        self._collections = collections
        self._encoders = encoders

    def pair(self, sentence_a: str, sentence_b: str, model: str | None = None) -> PairScore:
        """Cosine similarity of two sentences.

        Args:
            sentence_a: first sentence.
            sentence_b: second sentence.
            model: an allowed model; default SEMSEARCH_MODEL, or SEMSEARCH_CHINESE_MODEL when
                the sentences are mostly Chinese, Japanese or Korean.

        Returns:
            The score, the model's canonical name and which sentence was truncated.
        """
        check_text("sentence_a", sentence_a, self._settings)
        check_text("sentence_b", sentence_b, self._settings)
        name, encoded = self._encode([sentence_a, sentence_b], model)
        score = _cosine(encoded.vectors[:1], encoded.vectors[1:])
        return PairScore(model=name, similarity=float(score[0, 0]),
                         truncated=(encoded.truncated[0], encoded.truncated[1]))

    def many(self, sources: Sequence[str], candidates: Sequence[str], model: str | None = None,
             return_embeddings: bool = False) -> ManyScores:
        """Every source against every candidate (ModelScope's sentence-similarity input).

        Args:
            sources: one or more source sentences.
            candidates: one or more sentences to compare with each source.
            model: an allowed model; default SEMSEARCH_MODEL, or SEMSEARCH_CHINESE_MODEL when
                the sentences are mostly Chinese, Japanese or Korean.
            return_embeddings: also return the vectors, sources then candidates.

        Returns:
            The sources × candidates score matrix, truncation flags and optionally vectors.
        """
        check_texts("source_sentence", sources, self._settings)
        check_texts("sentences_to_compare", candidates, self._settings)
        name, encoded = self._encode([*sources, *candidates], model)
        split = len(sources)
        matrix = _cosine(encoded.vectors[:split], encoded.vectors[split:])
        embeddings = encoded.vectors.tolist() if return_embeddings else None
        return ManyScores(model=name, matrix=matrix.tolist(),
                          source_truncated=encoded.truncated[:split],
                          candidate_truncated=encoded.truncated[split:], embeddings=embeddings)

    def default_model(self, texts: Sequence[str]) -> str:
        """The model for a request that names none: the Chinese model for mostly-CJK text."""
        joined = " ".join(texts)
        return self._settings.chinese_model if mostly_cjk(joined) else self._settings.model

    def _encode(self, texts: list[str], model: str | None) -> tuple[str, EncodedBatch]:
        wanted = model if model is not None else self.default_model(texts)
        name = resolve_allowed(wanted, self._settings, self._collections)
        return name, self._encoders.get(name).encode_batch(texts, "query")

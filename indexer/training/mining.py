"""Hard-negative mining and held-out accuracy@1 for `semsearch train`, both by exact cosine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from indexer.training.data import Example

# Encodes texts as queries (True) or documents (False): L2-normalised float32 rows.
EncodeFn = Callable[[Sequence[str], bool], np.ndarray]
_BLOCK = 1024


def group_texts(examples: Sequence[Example]) -> dict[str, set[str]]:
    """Every text of each group (anchors and positives): none may be a negative of the group."""
    groups: dict[str, set[str]] = {}
    for example in examples:
        groups.setdefault(example.group, set()).update((example.anchor, *example.positives))
    return groups


def candidate_corpus(examples: Sequence[Example], symmetric: bool) -> dict[str, set[str]]:
    """The texts an anchor is matched against, each with the groups it answers.

    Symmetric data (an FAQ): every question, answering its intent. Pairs: every positive and
    given negative; a negative answers no group.
    """
    corpus: dict[str, set[str]] = {}
    for example in examples:
        texts = (example.anchor, *example.positives) if symmetric else example.positives
        for text in texts:
            corpus.setdefault(text, set()).add(example.group)
        for text in example.negatives:
            corpus.setdefault(text, set())
    return corpus


def mine_hard_negatives(encode: EncodeFn, examples: Sequence[Example], symmetric: bool,
                        count: int) -> list[tuple[str, ...]]:
    """Per example, the `count` corpus texts closest to its anchor that answer other groups.

    Args:
        encode: the base model's encoder.
        examples: the training examples.
        symmetric: FAQ-like data (see candidate_corpus).
        count: negatives per example; 0 mines none.

    Returns:
        One tuple of negatives per example, closest first; never a text of its own group.
    """
    if count <= 0 or not examples:
        return [() for _ in examples]
    corpus = candidate_corpus(examples, symmetric)
    texts = list(corpus)
    vectors = encode(texts, symmetric)
    anchors = encode([e.anchor for e in examples], True)
    own = group_texts(examples)
    depth = min(len(texts), count + 32)
    mined: list[tuple[str, ...]] = []
    for start in range(0, len(examples), _BLOCK):
        sims = anchors[start:start + _BLOCK] @ vectors.T
        top = np.argsort(-sims, axis=1)[:, :depth]
        for row, example in zip(top, examples[start:start + _BLOCK], strict=True):
            banned = own[example.group]
            picked = [texts[i] for i in row if texts[i] not in banned
                      and example.group not in corpus[texts[i]]][:count]
            mined.append(tuple(picked))
    return mined


def accuracy_at_1(encode: EncodeFn, train: Sequence[Example], validation: Sequence[Example],
                  symmetric: bool) -> float:
    """Share of held-out anchors whose closest corpus text answers their group.

    The corpus is the training side's candidates plus the held-out positives (pairs), so an
    anchor competes with every other text, as in search or FAQ matching.
    """
    if not validation:
        return float("nan")
    corpus = candidate_corpus(train, symmetric)
    if not symmetric:
        for text, groups in candidate_corpus(validation, symmetric=False).items():
            corpus.setdefault(text, set()).update(groups)
    texts = list(corpus)
    vectors = encode(texts, symmetric)
    queries = encode([e.anchor for e in validation], True)
    right = 0
    for start in range(0, len(validation), _BLOCK):
        sims = queries[start:start + _BLOCK] @ vectors.T
        for best, example in zip(np.argmax(sims, axis=1), validation[start:start + _BLOCK],
                                 strict=True):
            right += example.group in corpus[texts[int(best)]]
    return right / len(validation)

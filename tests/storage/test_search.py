"""Tests for Collection.search: exact top-k against numpy, cosine scores and metadata filters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from storage import Collection, DocumentInput, InvalidFilter, UnknownFilterField
from tests.storage.helpers import brute_force, commit, hit_ids, make_docs, make_vectors

TOPICS = ["cooking", "sport", "tech", "science"]


def _meta(i: int) -> dict[str, Any]:
    return {"topic": TOPICS[i % 4], "year": 2000 + i % 5, "featured": i % 3 == 0, "rating": i % 2 + 0.5}


@pytest.fixture
def corpus(collection: Collection) -> tuple[Collection, np.ndarray, list[str]]:
    """200 random unit vectors with metadata, committed in two batches."""
    vectors = make_vectors(200, seed=42)
    docs = make_docs(vectors, metadata=_meta)
    commit(collection, docs[:120])
    commit(collection, docs[120:])
    return collection, vectors, [doc.doc_id for doc in docs]


def _expected(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int,
              keep: Any = None) -> list[str]:
    rows = [i for i in range(len(ids)) if keep is None or keep(_meta(i))]
    return brute_force(vectors[rows], [ids[i] for i in rows], query, k)


def test_top_k_matches_numpy_brute_force(corpus: tuple[Collection, np.ndarray, list[str]]) -> None:
    collection, vectors, ids = corpus
    queries = make_vectors(6, seed=7)

    results = collection.search(queries, 10)

    assert len(results) == 6
    for query, hits in zip(queries, results, strict=True):
        assert hit_ids(hits) == brute_force(vectors, ids, query, 10)


def test_scores_are_cosine_similarities(corpus: tuple[Collection, np.ndarray, list[str]]) -> None:
    collection, vectors, ids = corpus
    query = make_vectors(1, seed=3)[0]
    position = {doc_id: i for i, doc_id in enumerate(ids)}

    hits = collection.search(query[None, :], 20)[0]

    for hit in hits:
        v = vectors[position[hit.doc_id]]
        cosine = float(v @ query) / float(np.linalg.norm(v) * np.linalg.norm(query))
        assert hit.score == pytest.approx(cosine, abs=1e-5)
        assert -1.0 - 1e-5 <= hit.score <= 1.0 + 1e-5
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_stored_vector_is_its_own_top_hit(corpus: tuple[Collection, np.ndarray, list[str]]) -> None:
    collection, vectors, ids = corpus

    results = collection.search(vectors[[0, 57, 199]], 1)

    assert [hits[0].doc_id for hits in results] == [ids[0], ids[57], ids[199]]
    assert all(hits[0].score == pytest.approx(1.0, abs=1e-5) for hits in results)


def test_k_larger_than_count_returns_every_document(collection: Collection) -> None:
    vectors = make_vectors(7)
    commit(collection, make_docs(vectors))
    query = make_vectors(1, seed=5)

    hits = collection.search(query, 50)[0]

    assert len(hits) == 7
    assert hit_ids(hits) == brute_force(vectors, [f"doc-{i}" for i in range(7)], query[0], 7)


def test_empty_collection_returns_no_hits(collection: Collection) -> None:
    assert collection.search(make_vectors(3), 5) == [[], [], []]


def test_collection_emptied_by_deletes_returns_no_hits(collection: Collection) -> None:
    commit(collection, make_docs(make_vectors(2)))
    commit(collection, deletes=["doc-0", "doc-1"])

    assert collection.search(make_vectors(1), 5) == [[]]


@pytest.mark.parametrize(
    ("filter_", "keep"),
    [
        ({"topic": "sport"}, lambda m: m["topic"] == "sport"),
        ({"year": 2003}, lambda m: m["year"] == 2003),
        ({"featured": True}, lambda m: m["featured"] is True),
        ({"featured": False}, lambda m: m["featured"] is False),
        ({"rating": 1.5}, lambda m: m["rating"] == 1.5),
        ({"topic": ["tech", "science"]}, lambda m: m["topic"] in ("tech", "science")),
        ({"topic": "cooking", "year": [2000, 2004]},
         lambda m: m["topic"] == "cooking" and m["year"] in (2000, 2004)),
        ({"topic": "tech", "featured": True, "year": 2001},
         lambda m: m["topic"] == "tech" and m["featured"] and m["year"] == 2001),
    ],
    ids=["str", "int", "bool-true", "bool-false", "float", "any-of", "and-with-list", "and-three"],
)
def test_filters_match_brute_force_on_the_filtered_subset(
        corpus: tuple[Collection, np.ndarray, list[str]], filter_: dict[str, Any], keep: Any) -> None:
    collection, vectors, ids = corpus
    queries = make_vectors(3, seed=11)
    allowed = sum(1 for i in range(200) if keep(_meta(i)))
    assert 0 < allowed < 200  # the filter really narrows the corpus

    results = collection.search(queries, 5, filter_)

    for query, hits in zip(queries, results, strict=True):
        assert hit_ids(hits) == _expected(vectors, ids, query, 5, keep)
        assert all(keep(hit.metadata) for hit in hits)


def test_filter_with_k_above_matches_returns_every_match(
        corpus: tuple[Collection, np.ndarray, list[str]]) -> None:
    collection, vectors, ids = corpus
    keep = lambda m: m["topic"] == "tech" and m["year"] == 2001  # noqa: E731
    query = make_vectors(1, seed=13)[0]

    hits = collection.search(query[None, :], 100, {"topic": "tech", "year": 2001})[0]

    assert hit_ids(hits) == _expected(vectors, ids, query, 100, keep)
    assert len(hits) == sum(1 for i in range(200) if keep(_meta(i)))


def test_filter_matching_nothing_returns_empty_lists(
        corpus: tuple[Collection, np.ndarray, list[str]]) -> None:
    collection, _, _ = corpus

    assert collection.search(make_vectors(2), 5, {"topic": "gardening"}) == [[], []]
    assert collection.search(make_vectors(1), 5, {"topic": "sport", "year": 1999}) == [[]]


def test_unknown_filter_field_names_the_known_fields(
        corpus: tuple[Collection, np.ndarray, list[str]]) -> None:
    collection, _, _ = corpus

    with pytest.raises(UnknownFilterField) as info:
        collection.search(make_vectors(1), 5, {"colour": "red"})

    message = info.value.message
    assert "'colour'" in message
    assert "known fields: featured, rating, topic, year" in message
    assert collection.fields() == ["featured", "rating", "topic", "year"]


def test_unknown_filter_field_on_collection_without_metadata(collection: Collection) -> None:
    commit(collection, make_docs(make_vectors(2)))

    with pytest.raises(UnknownFilterField, match=r"known fields: none"):
        collection.search(make_vectors(1), 5, {"topic": "x"})


@pytest.mark.parametrize("value", [{"op": "gt"}, [], [1, {"a": 1}], None, [["nested"]]],
                         ids=["dict", "empty-list", "list-with-dict", "none", "nested-list"])
def test_bad_filter_value_raises_invalid_filter(
        corpus: tuple[Collection, np.ndarray, list[str]], value: Any) -> None:
    collection, _, _ = corpus

    with pytest.raises(InvalidFilter, match="'year'"):
        collection.search(make_vectors(1), 5, {"year": value})


def test_string_filter_does_not_match_number_of_same_spelling(collection: Collection) -> None:
    vectors = make_vectors(2)
    commit(collection, make_docs(vectors, metadata=lambda i: {"code": [7, "7"][i]}))

    assert hit_ids(collection.search(vectors[:1], 5, {"code": "7"})[0]) == ["doc-1"]
    assert hit_ids(collection.search(vectors[:1], 5, {"code": 7})[0]) == ["doc-0"]


def test_search_after_updates_and_deletes_matches_brute_force(collection: Collection) -> None:
    vectors = make_vectors(60, seed=21)
    commit(collection, make_docs(vectors[:50]))
    replacement = make_vectors(10, seed=22)
    changed = [DocumentInput(doc_id=f"doc-{i}", text=f"new {i}", vector=replacement[i]) for i in range(10)]
    commit(collection, changed, deletes=[f"doc-{i}" for i in range(40, 50)])
    commit(collection, make_docs(vectors[50:], start=50))
    current = np.concatenate([replacement, vectors[10:40], vectors[50:]])
    ids = [f"doc-{i}" for i in [*range(40), *range(50, 60)]]

    for query in make_vectors(5, seed=23):
        assert hit_ids(collection.search(query[None, :], 8)[0]) == brute_force(current, ids, query, 8)
    assert collection.count == 50


def test_filter_keeps_json_types_apart(collection: Collection) -> None:
    vectors = make_vectors(3)
    values: list[object] = [True, 1, "1"]
    commit(collection, [DocumentInput(doc_id=f"t{i}", text=f"t{i}", metadata={"f": v}, vector=vec)
                        for i, (v, vec) in enumerate(zip(values, vectors, strict=True))])

    def ids(value: object) -> list[str]:
        return sorted(h.doc_id for h in collection.search(vectors[:1], 10, {"f": value})[0])

    assert ids(True) == ["t0"]
    assert ids(1) == ["t1"]
    assert ids(1.0) == ["t1"]
    assert ids("1") == ["t2"]
    assert ids(False) == []
    assert ids([True, "1"]) == ["t0", "t2"]

"""The storage contract: every test runs against FAISS + SQLite, milvus-lite and milvus-lite server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from storage import (
    CommitStats,
    DocumentInput,
    DocumentNotFound,
    IndexNotFound,
    InvalidFilter,
    ManifestMismatch,
    ModelInfo,
    UnknownFilterField,
)
from storage.backend import Backend, CollectionHandle
from tests.contract.conftest import DOCS, Corpus

SCORE_TOLERANCE = 1e-5


def ids(hits: list) -> list[str]:
    return [hit.doc_id for hit in hits]


def commit(collection: CollectionHandle, upserts: list[DocumentInput] | None = None,
           deletes: list[str] | None = None) -> CommitStats:
    with collection.writer() as writer:
        return writer.commit(upserts or [], deletes or [])


def doc(corpus: Corpus, doc_id: str) -> DocumentInput:
    return next(d for d in corpus.documents() if d.doc_id == doc_id)


def test_search_returns_the_exact_top_hits_and_cosine_scores(filled: CollectionHandle,
                                                             corpus: Corpus) -> None:
    results = filled.search(corpus.query_vectors, 5)
    assert len(results) == len(corpus.query_vectors)
    for query, hits in enumerate(results):
        expected = corpus.exact(query, 5)
        assert ids(hits) == [doc_id for doc_id, _ in expected]
        for hit, (_, score) in zip(hits, expected, strict=True):
            assert hit.score == pytest.approx(score, abs=SCORE_TOLERANCE)
    top = results[0][0]
    assert (top.doc_id, top.text) == ("bake-1", DOCS[0][1])
    assert top.metadata == DOCS[0][2]
    assert results[1][0].doc_id == "sport-1"


def test_k_larger_than_the_collection_returns_every_document(filled: CollectionHandle,
                                                             corpus: Corpus) -> None:
    hits = filled.search(corpus.query_vectors[:1], 50)[0]
    assert sorted(ids(hits)) == sorted(d for d, _, _ in DOCS)


def test_empty_collection_search_is_empty(new_collection: Callable[..., CollectionHandle],
                                          corpus: Corpus) -> None:
    collection = new_collection()
    assert collection.count == 0
    assert collection.search(corpus.query_vectors[:2], 3) == [[], []]


def test_count_generation_fields_and_names(filled: CollectionHandle, backend: Backend,
                                           name: str) -> None:
    assert filled.count == len(DOCS)
    assert filled.generation == 1
    assert filled.fields() == ["featured", "lang", "nested", "rating", "tags", "topic", "year"]
    assert name in backend.names()
    info = backend.info(name)
    assert (info.count, info.generation, info.model) == (len(DOCS), 1, filled.model)
    manifest = filled.manifest()
    assert (manifest.count, manifest.generation, manifest.metric) == (len(DOCS), 1, "inner_product")


def test_get_by_id(filled: CollectionHandle) -> None:
    stored = filled.get("zh-1")
    assert (stored.doc_id, stored.text, stored.metadata) == DOCS[-1]
    with pytest.raises(DocumentNotFound):
        filled.get("no-such-id")


def test_upsert_with_new_text_replaces_document_and_vector(filled: CollectionHandle,
                                                           corpus: Corpus) -> None:
    # bake-1 now carries the galaxy text and vector: the star query must find it first.
    galaxy = doc(corpus, "space-1")
    stats = commit(filled, [DocumentInput(doc_id="bake-1", text=galaxy.text + " (copy)",
                                          metadata={"topic": "copy"}, vector=galaxy.vector)])
    assert (stats.added, stats.updated, stats.unchanged, stats.generation) == (0, 1, 0, 2)
    assert filled.count == len(DOCS)
    assert filled.get("bake-1").text == galaxy.text + " (copy)"
    hits = filled.search(corpus.query_vectors[3:4], 2)[0]
    assert set(ids(hits)) == {"bake-1", "space-1"}
    assert hits[0].score == pytest.approx(hits[1].score, abs=SCORE_TOLERANCE)
    assert "bake-1" not in ids(filled.search(corpus.query_vectors[:1], 1, {"topic": "cooking"})[0])


def test_same_document_again_is_unchanged_and_no_new_generation(filled: CollectionHandle,
                                                                corpus: Corpus) -> None:
    stats = commit(filled, [replace(d, vector=None) for d in corpus.documents()])
    assert (stats.added, stats.updated, stats.unchanged) == (0, 0, len(DOCS))
    assert stats.generation == filled.generation == 1


def test_metadata_only_change_keeps_the_vector(filled: CollectionHandle, corpus: Corpus) -> None:
    before = filled.search(corpus.query_vectors[:1], 1)[0][0]
    old = doc(corpus, "bake-1")
    stats = commit(filled, [DocumentInput(doc_id="bake-1", text=old.text, metadata={"topic": "bread"})])
    assert (stats.updated, stats.generation) == (1, 2)
    after = filled.search(corpus.query_vectors[:1], 1, {"topic": "bread"})[0]
    assert ids(after) == ["bake-1"]
    assert after[0].score == pytest.approx(before.score, abs=SCORE_TOLERANCE)
    assert after[0].metadata == {"topic": "bread"}


def test_needs_vectors_only_for_new_or_changed_text(filled: CollectionHandle) -> None:
    assert filled.needs_vectors([("bake-1", DOCS[0][1]), ("bake-1", "other text"),
                                 ("new-id", "text")]) == [False, True, True]


def test_delete_removes_from_search_get_and_count(filled: CollectionHandle, corpus: Corpus) -> None:
    stats = commit(filled, deletes=["bake-1", "bake-2", "missing-id"])
    assert (stats.deleted, stats.missing, stats.generation) == (2, ["missing-id"], 2)
    assert filled.count == len(DOCS) - 2
    hits = filled.search(corpus.query_vectors[:1], len(DOCS))[0]
    assert not {"bake-1", "bake-2"} & set(ids(hits))
    assert ids(hits) == [d for d, _ in corpus.exact(0, len(DOCS), {d for d, _, _ in DOCS[2:]})]
    with pytest.raises(DocumentNotFound):
        filled.get("bake-1")


def test_one_commit_last_upsert_wins_and_delete_beats_upsert(
        new_collection: Callable[..., CollectionHandle], corpus: Corpus) -> None:
    collection = new_collection()
    first, second = corpus.documents()[:2]
    stats = commit(collection, [first, replace(first, text="second version", vector=second.vector),
                                second], deletes=[second.doc_id])
    assert (stats.added, stats.deleted, stats.missing) == (1, 0, [])
    assert collection.count == 1
    assert collection.get(first.doc_id).text == "second version"


@pytest.mark.parametrize(("filter_", "expected"), [
    ({"topic": "cooking"}, {"bake-1", "bake-2"}),
    ({"topic": ["sport", "tech"]}, {"sport-1", "sport-2", "tech-1", "tech-2"}),
    ({"year": 2021}, {"bake-1"}),  # the string "2021" of tech-2 is not the number 2021
    ({"year": "2021"}, {"tech-2"}),
    ({"year": 2022.0}, {"sport-1", "space-1"}),  # 2022.0 is the number 2022
    ({"rating": 3}, {"sport-1"}),  # stored 3.0
    ({"rating": [4.5, 1.0]}, {"bake-1", "bake-2"}),
    ({"featured": True}, {"bake-1", "sport-1", "tech-1"}),  # not sport-2's 1
    ({"featured": 1}, {"sport-2"}),  # not the booleans true
    ({"featured": False, "topic": "tech"}, {"tech-2"}),  # every field must match
    ({"topic": "cooking", "year": [2019, 2024]}, {"bake-2"}),
    ({"lang": "zh"}, {"zh-1"}),
    ({"topic": "nothing"}, set()),
    ({"tags": "python"}, set()),  # lists and objects are never equal to a scalar
    ({"nested": 1}, set()),
])
def test_metadata_filters(filled: CollectionHandle, corpus: Corpus, filter_: dict,
                          expected: set[str]) -> None:
    hits = filled.search(corpus.query_vectors[:2], len(DOCS), filter_)
    for query, query_hits in enumerate(hits):
        assert set(ids(query_hits)) == expected
        exact = corpus.exact(query, len(DOCS), expected)
        assert ids(query_hits) == [d for d, _ in exact]
        assert [h.score for h in query_hits] == pytest.approx([s for _, s in exact], abs=SCORE_TOLERANCE)


def test_filter_top_k_is_taken_after_filtering(filled: CollectionHandle, corpus: Corpus) -> None:
    hits = filled.search(corpus.query_vectors[:1], 1, {"topic": "daily"})[0]
    assert ids(hits) == ["zh-1"]


def test_bad_filters_are_clear_errors(filled: CollectionHandle, corpus: Corpus) -> None:
    with pytest.raises(UnknownFilterField, match="known fields: featured, lang"):
        filled.search(corpus.query_vectors[:1], 3, {"colour": "red"})
    with pytest.raises(InvalidFilter):
        filled.search(corpus.query_vectors[:1], 3, {"topic": {"gt": 1}})  # type: ignore[dict-item]
    with pytest.raises(InvalidFilter):
        filled.search(corpus.query_vectors[:1], 3, {"topic": []})


def test_model_mismatch_is_a_clear_error(filled: CollectionHandle, backend: Backend, name: str,
                                         corpus: Corpus) -> None:
    other_name = ModelInfo(name="another-model", dimension=corpus.model.dimension, max_length=128)
    with pytest.raises(ManifestMismatch, match="was built with model 'all-MiniLM-L6-v2'"):
        backend.open_or_create(name, other_name)
    other_dim = replace(corpus.model, dimension=768)
    with pytest.raises(ManifestMismatch, match="384-d"):
        backend.open_or_create(name, other_dim)
    same = backend.open_or_create(name, corpus.model)
    assert same.count == len(DOCS)
    same.close()


def test_missing_collection_is_not_found(backend: Backend) -> None:
    with pytest.raises(IndexNotFound):
        backend.open("never-created")
    with pytest.raises(IndexNotFound):
        backend.info("never-created")


def test_check_passes_a_whole_collection_and_fails_a_missing_one(filled: CollectionHandle,
                                                                  backend: Backend) -> None:
    report = backend.check(filled.name)
    assert report.ok and report.warnings == [], report
    assert (report.generation, report.count) == (1, len(DOCS))
    missing = backend.check("no-such-collection")
    assert not missing.ok and "does not exist" in missing.errors[0]


def test_bad_vectors_are_rejected_and_nothing_is_written(filled: CollectionHandle,
                                                         corpus: Corpus) -> None:
    good = doc(corpus, "bake-1")
    for vector in (good.vector * 2, good.vector[:10], None):
        with pytest.raises(ValueError):
            commit(filled, [DocumentInput(doc_id="bad-1", text="bad", vector=vector),
                            replace(good, doc_id="good-1")])
    assert filled.count == len(DOCS)
    assert filled.generation == 1
    with pytest.raises(DocumentNotFound):
        filled.get("good-1")


@pytest.mark.parametrize("doc_id", ['quote"d', "it's", "back\\slash", "new\nline", "tab\tbed",
                                    "中文-ид", "emoji 🙂", "[x] in y or 1 == 1"])
def test_ids_with_special_characters_round_trip(new_collection: Callable[..., CollectionHandle],
                                                corpus: Corpus, doc_id: str) -> None:
    collection = new_collection()
    vector = corpus.doc_vectors[0]
    commit(collection, [DocumentInput(doc_id=doc_id, text="t", vector=vector),
                        DocumentInput(doc_id="other", text="o", vector=corpus.doc_vectors[1])])
    assert collection.get(doc_id).doc_id == doc_id
    assert collection.needs_vectors([(doc_id, "t")]) == [False]
    assert ids(collection.search(vector[None, :], 1)[0]) == [doc_id]
    stats = commit(collection, deletes=[doc_id])
    assert stats.deleted == 1
    assert collection.count == 1
    with pytest.raises(DocumentNotFound):
        collection.get(doc_id)


def test_another_handle_sees_commits_after_refresh(filled: CollectionHandle, backend: Backend,
                                                   name: str, corpus: Corpus) -> None:
    reader = backend.open(name)
    try:
        commit(filled, deletes=["zh-1"])
        reader.refresh()
        assert (reader.count, reader.generation) == (len(DOCS) - 1, 2)
        assert "zh-1" not in ids(reader.search(corpus.query_vectors[:1], len(DOCS))[0])
        assert not reader.replaced_on_disk()
    finally:
        reader.close()


def test_unicode_metadata_and_field_names(new_collection: Callable[..., CollectionHandle],
                                          corpus: Corpus) -> None:
    collection = new_collection()
    meta = {"类别": "新闻", 'we"ird': "va'l\\ue", "big": 2**62 + 1}
    commit(collection, [DocumentInput(doc_id="u", text="t", metadata=meta, vector=corpus.doc_vectors[0])])
    assert collection.get("u").metadata == meta
    for field, value in meta.items():
        if '"' in field:
            continue  # such names cannot be filtered on (InvalidFilter, as in SQLite)
        assert ids(collection.search(corpus.doc_vectors[:1], 5, {field: value})[0]) == ["u"]
    assert collection.search(corpus.doc_vectors[:1], 5, {"big": 2**62})[0] == []


def test_scores_are_inner_products_of_normalised_vectors(filled: CollectionHandle,
                                                         corpus: Corpus) -> None:
    query = corpus.doc_vectors[4]  # tech-1's own vector
    hits = filled.search(query[None, :], 3)[0]
    assert hits[0].doc_id == "tech-1"
    assert hits[0].score == pytest.approx(1.0, abs=SCORE_TOLERANCE)
    norms = np.linalg.norm(corpus.doc_vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)

"""Passages in FAISS + SQLite: a document's passages change together, in one generation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from storage import Chunking, Collection, DocumentInput, ModelInfo, check_collection
from storage.records import PassageInput, PassageSpan

DIM = 16
MODEL = ModelInfo(name="fake", dimension=DIM, max_length=64)


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def passage_doc(doc_id: str, count: int, rng: np.random.Generator,
                metadata: dict[str, object] | None = None) -> tuple[DocumentInput, list[np.ndarray]]:
    """A document of `count` sentences, one passage each, with random unit vectors."""
    sentences = [f"{doc_id} sentence {i} about topic{i}." for i in range(count)]
    text = " ".join(sentences)
    vectors, passages, start = [], [], 0
    for i, sentence in enumerate(sentences):
        vectors.append(unit(rng))
        passages.append(PassageInput(span=PassageSpan(index=i, start=start, end=start + len(sentence)),
                                     vector=vectors[-1]))
        start += len(sentence) + 1
    return DocumentInput(doc_id=doc_id, text=text, metadata=metadata or {},
                         passages=tuple(passages)), vectors


def rows(folder: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "metadata.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def chunked(tmp_path: Path) -> Collection:
    return Collection.create(tmp_path, "long", MODEL, chunking=Chunking(tokens=32, overlap=8))


def commit(collection: Collection, upserts: list[DocumentInput] = (),  # type: ignore[assignment]
           deletes: list[str] = ()) -> None:  # type: ignore[assignment]
    with collection.writer() as writer:
        writer.commit(upserts, deletes)


def test_shortening_a_document_from_ten_passages_to_two_leaves_exactly_two(
        chunked: Collection, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    long_doc, _ = passage_doc("a", 10, rng)
    other, _ = passage_doc("b", 3, rng)
    commit(chunked, [long_doc, other])
    assert (chunked.count, chunked.passage_count) == (2, 13)

    short_doc, short_vectors = passage_doc("a", 2, rng)
    short_doc = DocumentInput(doc_id="a", text=short_doc.text + " changed",
                              passages=short_doc.passages)
    commit(chunked, [short_doc])

    folder = tmp_path / "long"
    a_rowid = rows(folder, "SELECT id FROM documents WHERE doc_id = 'a'")[0][0]
    assert rows(folder, f"SELECT count(*) FROM passages WHERE document = {a_rowid}") == [(2,)]
    assert (chunked.count, chunked.passage_count) == (2, 5)
    # The lexical index holds the documents; the index file agrees with SQLite (check).
    assert rows(folder, "SELECT count(*) FROM lexical") == [(2,)]
    report = check_collection(tmp_path, "long")
    assert report.ok, report.errors
    hit = chunked.search(short_vectors[1][None, :], 1)[0][0]
    assert hit.doc_id == "a" and hit.passage is not None and hit.passage.index == 1
    assert hit.text[hit.passage.start:hit.passage.end] == "a sentence 1 about topic1."
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_delete_leaves_no_passages_and_a_metadata_change_keeps_them(
        chunked: Collection, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    doc, vectors = passage_doc("a", 4, rng, {"kind": "x"})
    commit(chunked, [doc])
    before = rows(tmp_path / "long", "SELECT id FROM passages ORDER BY id")

    commit(chunked, [DocumentInput(doc_id="a", text=doc.text, metadata={"kind": "y"})])
    assert rows(tmp_path / "long", "SELECT id FROM passages ORDER BY id") == before
    assert chunked.search(vectors[0][None, :], 3, {"kind": "y"})[0][0].doc_id == "a"
    assert chunked.search(vectors[0][None, :], 3, {"kind": "x"}) == [[]]

    commit(chunked, deletes=["a"])
    assert rows(tmp_path / "long", "SELECT count(*) FROM passages") == [(0,)]
    assert rows(tmp_path / "long", "SELECT count(*) FROM lexical") == [(0,)]
    assert (chunked.count, chunked.passage_count) == (0, 0)
    assert check_collection(tmp_path, "long").ok


def test_top_k_counts_documents_each_ranked_by_its_best_passage(chunked: Collection) -> None:
    rng = np.random.default_rng(3)
    docs = [passage_doc(f"d{i}", 8, rng) for i in range(12)]
    commit(chunked, [doc for doc, _ in docs])
    query = docs[5][1][6]  # passage 6 of d5
    hits = chunked.search(query[None, :], 5)[0]
    assert len(hits) == 5 == len({hit.doc_id for hit in hits})
    assert hits[0].doc_id == "d5" and hits[0].passage == PassageSpan(
        index=6, start=docs[5][0].passages[6].span.start,  # type: ignore[index]
        end=docs[5][0].passages[6].span.end)  # type: ignore[index]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:  # each document's score is its best passage's cosine
        vectors = docs[int(hit.doc_id[1:])][1]
        assert hit.score == pytest.approx(max(float(v @ query) for v in vectors), abs=1e-5)


def test_lexical_search_ranks_documents_and_shows_the_passage_with_the_query_terms(
        chunked: Collection) -> None:
    rng = np.random.default_rng(4)
    commit(chunked, [passage_doc(f"d{i}", 6, rng)[0] for i in range(10)])
    hits = chunked.lexical_search(["d3 topic4"], 3)[0]
    assert len(hits) == 3 == len({hit.doc_id for hit in hits})
    assert hits[0].doc_id == "d3" and hits[0].passage is not None
    assert hits[0].text[hits[0].passage.start:hits[0].passage.end] == "d3 sentence 4 about topic4."


def spread_doc(doc_id: str, sentences: list[str], rng: np.random.Generator) -> DocumentInput:
    """A document of these sentences, one passage each."""
    passages, start = [], 0
    for i, sentence in enumerate(sentences):
        passages.append(PassageInput(span=PassageSpan(index=i, start=start, end=start + len(sentence)),
                                     vector=unit(rng)))
        start += len(sentence) + 1
    return DocumentInput(doc_id=doc_id, text=" ".join(sentences), passages=tuple(passages))


def test_lexical_scores_the_whole_document_not_its_best_passage(chunked: Collection) -> None:
    rng = np.random.default_rng(7)
    spread = spread_doc("spread", ["glacier retreat measured.", "ocean warming measured."], rng)
    dense = spread_doc("dense", ["glacier glacier glacier noted.", "nothing else here."], rng)
    filler = [spread_doc(f"f{i}", [f"filler {i} text.", "more filler."], rng) for i in range(6)]
    commit(chunked, [spread, dense, *filler])
    hits = chunked.lexical_search(["glacier ocean"], 2)[0]
    # Whole documents: only `spread` holds both terms. Its best passage holds one term once,
    # less than `dense`'s passage, so ranking by the best passage would put `dense` first.
    assert [hit.doc_id for hit in hits] == ["spread", "dense"]
    assert hits[0].lexical_score == hits[0].score and hits[0].passage is not None
    assert hits[0].passage.index == 0  # both passages hold one term: the first is shown


def test_a_chunked_collection_that_indexed_passages_is_reindexed_by_document(
        chunked: Collection, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    commit(chunked, [passage_doc(f"d{i}", 4, rng)[0] for i in range(3)])
    chunked.close()
    folder = tmp_path / "long"
    with sqlite3.connect(folder / "metadata.db") as conn:  # the layout before documents
        conn.execute("DELETE FROM lexical")
        conn.execute("INSERT INTO lexical (rowid, tokens) SELECT id, 'old passage row' FROM passages")
        conn.execute("DELETE FROM meta WHERE key = 'lexical_unit'")
    assert rows(folder, "SELECT count(*) FROM lexical") == [(12,)]

    reopened = Collection.open(tmp_path, "long")
    assert rows(folder, "SELECT count(*) FROM lexical") == [(3,)]
    assert rows(folder, "SELECT value FROM meta WHERE key = 'lexical_unit'") == [("document",)]
    assert reopened.lexical_search(["old passage row"], 3) == [[]]
    assert reopened.lexical_search(["d2 topic3"], 1)[0][0].doc_id == "d2"
    assert check_collection(tmp_path, "long").ok


def test_manifest_records_chunking_and_counts(chunked: Collection, tmp_path: Path) -> None:
    commit(chunked, [passage_doc("a", 3, np.random.default_rng(5))[0]])
    manifest = json.loads((tmp_path / "long" / "manifest.json").read_text())
    assert manifest["chunking"] == {"tokens": 32, "overlap": 8}
    assert (manifest["count"], manifest["passages"]) == (1, 3)
    reopened = Collection.open(tmp_path, "long")
    assert reopened.chunking == Chunking(tokens=32, overlap=8)
    assert (reopened.count, reopened.passage_count) == (1, 3)


def test_a_collection_without_passages_keeps_its_manifest_and_answers(tmp_path: Path) -> None:
    plain = Collection.create(tmp_path, "plain", MODEL)
    vector = unit(np.random.default_rng(6))
    commit(plain, [DocumentInput(doc_id="a", text="one vector", vector=vector)])
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert "chunking" not in manifest and "passages" not in manifest
    assert plain.chunking is None and plain.passage_count is None
    hit = plain.search(vector[None, :], 1)[0][0]
    assert (hit.doc_id, hit.passage) == ("a", None)


def test_a_document_without_passages_is_refused_and_nothing_changes(chunked: Collection) -> None:
    with pytest.raises(ValueError, match="has no passages"):
        commit(chunked, [DocumentInput(doc_id="a", text="t", vector=unit(np.random.default_rng(7)))])
    assert (chunked.count, chunked.passage_count, chunked.generation) == (0, 0, 0)

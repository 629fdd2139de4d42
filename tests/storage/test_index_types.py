"""Index types (flat, HNSW, IVF-SQ8/PQ, auto): recall vs exact, deletes, persistence, mmap."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.encoding import Encoder
from storage import Collection, DocumentInput, ModelInfo, check_collection, read_manifest
from storage.index_types import IndexSpec, InvalidIndexSpec, SearchParams, parse_params
from tests.storage.helpers import commit, make_docs, make_vectors

CORPUS = Path(__file__).parents[1] / "data" / "scifact" / "corpus.jsonl"
QUERIES = Path(__file__).parents[1] / "data" / "scifact" / "queries.jsonl"


@pytest.fixture(scope="module")
def scifact(minilm: Encoder) -> tuple[list[DocumentInput], np.ndarray, ModelInfo]:
    """480 SciFact titles and 100 claims encoded with the real MiniLM."""
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    vectors = minilm.encode([row["title"] for row in rows])
    docs = [DocumentInput(doc_id=row["_id"], text=row["title"], metadata={"n": i % 10}, vector=v)
            for i, (row, v) in enumerate(zip(rows, vectors, strict=True))]
    claims = [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()]
    model = ModelInfo(name=minilm.name, dimension=minilm.dimension, max_length=minilm.max_length)
    return docs, minilm.encode(claims, "query"), model


SPECS = {
    "hnsw": IndexSpec(kind="hnsw", m=8, ef_search=32),
    "ivf-sq8": IndexSpec(kind="ivf", nlist=8, nprobe=4),
}


def _ids(collection: Collection, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    return [[hit.doc_id for hit in hits] for hits in collection.search(queries, k)]


@pytest.mark.parametrize("name", list(SPECS))
def test_each_type_finds_what_exact_search_finds(
        name: str, data_root: Path, open_handles: list[Collection],
        scifact: tuple[list[DocumentInput], np.ndarray, ModelInfo]) -> None:
    docs, queries, model = scifact
    exact = Collection.create(data_root, "exact", model, IndexSpec(kind="flat"))
    ann = Collection.create(data_root, "ann", model, SPECS[name])
    open_handles.extend([exact, ann])
    commit(exact, docs)
    commit(ann, docs)
    assert ann.index_info()["type"] == SPECS[name].kind
    truth, found = _ids(exact, queries), _ids(ann, queries)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.9, recall
    # Scores come from the stored vectors: an approximate index never changes a hit's score.
    best = ann.search(queries[:1], 1)[0][0]
    stored = next(d for d in docs if d.doc_id == best.doc_id).vector
    assert best.score == pytest.approx(float(np.dot(queries[0], stored)), abs=1e-5)
    # A filter still holds: only documents with n == 3 come back, the same as exact search.
    only3 = ann.search(queries[:5], 5, {"n": 3})
    assert all(hit.metadata["n"] == 3 for hits in only3 for hit in hits)
    # Quantised codes (SQ8) may swap near-ties at the cut-off; the rest must agree.
    exact3 = exact.search(queries[:5], 5, {"n": 3})
    overlap = np.mean([len({h.doc_id for h in a} & {h.doc_id for h in b}) / 5
                       for a, b in zip(only3, exact3, strict=True)])
    assert overlap >= 0.8, overlap
    assert check_collection(data_root, "ann").ok


@pytest.mark.parametrize("name", ["hnsw", "ivf-sq8"])
def test_deleted_and_replaced_documents_never_come_back(
        name: str, new_collection: Callable[..., Collection], reopen: Callable[..., Collection],
        data_root: Path) -> None:
    spec = IndexSpec(kind=SPECS[name].kind, m=8, nlist=4, nprobe=4)
    collection = Collection.create(data_root, "c", _model(), spec)
    vectors = make_vectors(400, 16, seed=1)
    commit(collection, make_docs(vectors))
    gone = [f"doc-{i}" for i in range(0, 40)]
    moved = make_vectors(40, 16, seed=2)
    replaced = [DocumentInput(doc_id=f"doc-{40 + i}", text=f"new text {i}", vector=v)
                for i, v in enumerate(moved)]  # doc-40..79 get new texts and vectors
    commit(collection, replaced, deletes=gone)
    for handle in (collection, reopen("c")):
        assert handle.count == 360
        for hits in handle.search(vectors[:80], 5):
            assert not {h.doc_id for h in hits} & set(gone)
        for i, hits in enumerate(handle.search(vectors[40:80], 5)):
            # The old vector of a replaced document no longer finds it with its old score.
            assert all(h.doc_id != f"doc-{40 + i}" or h.score < 0.999 for h in hits)
        for i, hits in enumerate(handle.search(moved, 1)):
            assert hits[0].doc_id == f"doc-{40 + i}" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    report = check_collection(data_root, "c")
    assert report.ok, report.errors
    collection.close()


def test_hnsw_is_rebuilt_once_too_many_slots_are_tombstoned(data_root: Path) -> None:
    collection = Collection.create(data_root, "c", _model(), IndexSpec(kind="hnsw", m=8))
    vectors = make_vectors(200, 16)
    commit(collection, make_docs(vectors))
    commit(collection, deletes=[f"doc-{i}" for i in range(20)])  # 10%: tombstoned
    assert collection._index.tombstone_ratio == pytest.approx(0.1)
    commit(collection, deletes=[f"doc-{i}" for i in range(20, 60)])  # past 20%: rebuilt
    assert collection._index.tombstone_ratio == 0.0 and collection.count == 140
    assert check_collection(data_root, "c").ok
    collection.close()


def test_parameters_persist_and_search_overrides_apply(data_root: Path,
                                                       reopen: Callable[..., Collection]) -> None:
    spec = IndexSpec(kind="hnsw", m=12, ef_construction=50, ef_search=20)
    collection = Collection.create(data_root, "c", _model(), spec)
    commit(collection, make_docs(make_vectors(100, 16)))
    collection.close()
    again = reopen("c")
    assert again.index_spec == spec
    assert again.index_info()["layout"]["m"] == 12
    manifest = read_manifest(data_root / "c")
    assert manifest is not None and manifest.index["spec"]["ef_search"] == 20
    hits = again.search(make_vectors(3, 16, seed=5), 4, params=SearchParams(ef_search=200))
    assert all(len(h) == 4 for h in hits)
    # Changing only efSearch commits the new spec without rebuilding the graph.
    with again.writer() as writer:
        writer.commit(index=spec.updated(params={"efSearch": "99"}))
    assert reopen("c").index_spec.ef_search == 99


def test_auto_switches_type_as_the_collection_grows_and_shrinks(data_root: Path) -> None:
    spec = IndexSpec(kind="auto", auto_threshold=50, auto_kind="hnsw", m=8)
    collection = Collection.create(data_root, "c", _model(), spec)
    commit(collection, make_docs(make_vectors(40, 16)))
    assert collection.index_info()["type"] == "flat"
    commit(collection, make_docs(make_vectors(20, 16, seed=3), prefix="more"))
    assert collection.index_info()["type"] == "hnsw" and collection.count == 60
    assert check_collection(data_root, "c").ok
    commit(collection, deletes=[f"more-{i}" for i in range(20)])
    assert collection.index_info()["type"] == "flat" and collection.count == 40
    collection.close()


def test_ivf_stays_exact_until_it_has_enough_vectors_to_train(data_root: Path) -> None:
    collection = Collection.create(data_root, "c", _model(), IndexSpec(kind="ivf", nlist=4))
    commit(collection, make_docs(make_vectors(100, 16)))  # < 39 * 4 training points
    assert collection.index_info()["type"] == "flat"
    commit(collection, make_docs(make_vectors(100, 16, seed=4), prefix="b"))
    assert collection.index_info()["layout"] == {"kind": "ivf", "m": 0, "nlist": 4,
                                                 "quantizer": "sq8", "pq_m": 0}
    assert check_collection(data_root, "c").ok
    collection.close()


def test_readers_memory_map_the_index_and_writers_copy_it(data_root: Path) -> None:
    collection = Collection.create(data_root, "c", _model(), IndexSpec(kind="hnsw", m=8))
    commit(collection, make_docs(make_vectors(100, 16)))
    path = data_root / "c" / f"index-{collection.generation}.faiss"
    assert collection._index.mapped  # back to the shared mapping after the write
    maps = Path("/proc/self/maps").read_text()
    assert str(path.resolve()) in maps
    assert collection.search(make_vectors(1, 16), 3)[0]
    collection.close()


def test_bad_index_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidIndexSpec, match="unknown index parameter 'efsarch'"):
        IndexSpec().updated("hnsw", {"efsarch": "3"})
    with pytest.raises(InvalidIndexSpec, match="key=value"):
        parse_params(["M16"])
    with pytest.raises(InvalidIndexSpec, match="M must be|m must be"):
        IndexSpec().updated("hnsw", {"M": "1"})
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "hello"}\n')
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "x", "--index", "hnsw",
                                      "--index-param", "nprobe=zero", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "nprobe must be an integer" in result.output
    assert not (tmp_path / "x").exists()


def _model() -> ModelInfo:
    return ModelInfo(name="test-model", dimension=16, max_length=128)

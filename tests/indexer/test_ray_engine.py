"""`semsearch index --engine ray`: the same collection as the local engine (real MiniLM, Ray on 2 CPUs)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.encoding import Encoder, load_encoder
from indexer.models import SourceDocument
from indexer.pipeline import IndexOptions, index_documents, latest_rows, open_collection, scan_source
from indexer.ray_cluster import (
    INSTALL_HINT,
    EngineUnavailable,
    RayEngine,
    check_reachable,
    place_actors,
    require_ray,
)
from indexer.ray_engine import EncodingFailed, _changed_blocks, index_documents_ray
from indexer.sources import SourceSpec
from storage import Collection

SCIFACT = Path(__file__).resolve().parents[1] / "data" / "scifact"
DOCS = 100
BATCH, COMMIT = 16, 32
BACKEND = "torch"  # fp32 on both sides: vectors comparable to 1e-5 whatever the CPU


def test_only_new_or_changed_texts_are_sent(tmp_path: Path, fake_encoder: Encoder) -> None:
    pytest.importorskip("pyarrow")
    rows = [SourceDocument(doc_id=f"d{i}", text=f"text {i}") for i in range(10)]
    collection = open_collection(tmp_path, "c", fake_encoder)
    try:
        index_documents(collection, fake_encoder, rows)
        changed = [*rows[:3], SourceDocument(doc_id="d3", text="new text"), *rows[4:],
                   SourceDocument(doc_id="d10", text="text 10")]
        sent = bytearray()
        blocks = list(_changed_blocks(collection, changed, 4, sent))
        assert [b.column("doc_id").to_pylist() for b in blocks] == [["d3", "d10"]]
        assert list(sent) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    finally:
        collection.close()


def test_missing_ray_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(EngineUnavailable, match=r"pip install 'semsearch\[ray\]'"):
        require_ray()
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "a", "text": "hello"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["index", str(source), "-c", "docs", "--engine", "ray",
                                      "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert INSTALL_HINT in result.output
    assert not (tmp_path / "data").exists()  # nothing was created before the check


def test_an_unreachable_cluster_fails_fast() -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EngineUnavailable, match="cannot reach Ray at 127.0.0.1:.*ray start --head"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(EngineUnavailable, match="cannot reach Ray"):
        check_reachable(f"ray://127.0.0.1:{port}")
    check_reachable("auto")  # left to ray.init, which finds a running local cluster itself


def test_actors_go_one_per_gpu_where_the_cluster_has_them() -> None:
    def engine(**options: Any) -> RayEngine:
        return RayEngine(load_encoder=load_encoder, **options)

    cpus_only = {"CPU": 8.0}
    with_gpus = {"CPU": 32.0, "GPU": 2.0}
    on_cpus = place_actors(engine(), cpus_only)
    assert (on_cpus.actors, on_cpus.num_cpus, on_cpus.num_gpus) == (8, 1.0, 0.0)
    assert on_cpus.load_options == {"device": "cpu"}
    assert place_actors(engine(actor_cpus=4.0), cpus_only).actors == 2

    on_gpus = place_actors(engine(), with_gpus)
    assert (on_gpus.actors, on_gpus.num_gpus) == (2, 1.0)
    assert on_gpus.load_options == {"device": "cuda", "backend": "auto"}
    shared = place_actors(engine(actors=4, gpu_backend="torch"), with_gpus)
    assert (shared.actors, shared.num_gpus) == (4, 0.5)  # two actors per GPU
    assert shared.load_options == {"device": "cuda", "backend": "torch"}

    # The CPU is chosen explicitly, by a CPU-only backend under auto, or by a cluster without GPUs.
    for chosen in (engine(device="cpu"), engine(gpu_backend="onnx-int8")):
        placement = place_actors(chosen, with_gpus)
        assert (placement.actors, placement.num_gpus) == (32, 0.0)
        assert placement.load_options == {"device": "cpu"}
    assert place_actors(engine(device="cuda"), with_gpus).num_gpus == 1.0
    with pytest.raises(EngineUnavailable, match="--device cuda: the Ray cluster has no GPUs"):
        place_actors(engine(device="cuda"), cpus_only)
    with pytest.raises(EngineUnavailable, match="backend 'onnx-int8' runs on the CPU only"):
        place_actors(engine(device="cuda", gpu_backend="onnx-int8"), with_gpus)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    """One local Ray for the module (starting one takes seconds), removed with its files after."""
    ray = pytest.importorskip("ray", reason="Ray is in the test extra: pip install -e '.[test]'")
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    # A short private folder: Ray's socket paths must stay under ~107 bytes, and nothing is left
    # in /tmp/ray for other tests (or runs) to trip over.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SciFact's first 100 documents: titles, every fifth with its abstract (mostly > 256 tokens)."""
    path = tmp_path_factory.mktemp("corpus") / "scifact100.jsonl"
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as source:
        rows = [json.loads(source.readline()) for _ in range(DOCS)]
    path.write_text("".join(
        json.dumps({"_id": r["_id"], "body": f"{r['title']} {r['text']}" if n % 5 == 0 else r["title"]})
        + "\n" for n, r in enumerate(rows)), encoding="utf-8")
    return path


def _index(corpus: Path, data_dir: Path, name: str, *extra: str) -> str:
    result = CliRunner().invoke(cli, [
        "index", str(corpus), "-c", name, "--id-field", "_id", "--text-field", "body",
        "--data-dir", str(data_dir), "--batch-size", str(BATCH), "--commit-every", str(COMMIT),
        "-q", *extra,
    ], env={"SEMSEARCH_BACKEND": BACKEND}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _vectors(data_dir: Path, name: str) -> dict[str, np.ndarray]:
    uri = f"file:{data_dir / name / 'metadata.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute("SELECT doc_id, vector FROM documents").fetchall()
    return {doc_id: np.frombuffer(blob, dtype=np.float32) for doc_id, blob in rows}


class _FailOn:
    """An encoder loader whose encoder fails on one text: a worker crash in the middle of a job."""

    def __init__(self, poison: str) -> None:
        self.poison = poison

    def __call__(self, threads: int = 1, **options: Any) -> Encoder:
        encoder = load_encoder("all-MiniLM-L6-v2", **{"backend": BACKEND, **options}, threads=threads)
        poison, encode_batch = self.poison, encoder.encode_batch

        def failing(texts: Any, kind: Any = "document") -> Any:
            if poison in texts:
                raise RuntimeError("encoder crashed")
            return encode_batch(texts, kind)

        encoder.encode_batch = failing  # type: ignore[method-assign]
        return encoder


def _fail_midway(corpus: Path, data_dir: Path, name: str, driver: Encoder) -> int:
    """A Ray job whose actor crashes on document 70; returns how many documents it committed."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/ on sys.path
    spec = SourceSpec(path=corpus, id_field="_id", text_fields=("body",))
    scan = scan_source(spec)
    rows = list(latest_rows(spec, scan))
    collection = open_collection(data_dir, name, driver)
    try:
        broken = RayEngine(load_encoder=_FailOn(rows[70].text), actors=1)
        with pytest.raises(EncodingFailed, match="run the same command again") as failure:
            index_documents_ray(collection, driver, lambda: latest_rows(spec, scan), broken,
                                IndexOptions(batch_size=BATCH, commit_every=COMMIT))
        assert "RuntimeError: encoder crashed" in failure.value.message
        kept = collection.count
        # Whole commits only, none past the failing batch (how many came back first is Ray's timing).
        assert kept % COMMIT == 0 and kept <= 64
        assert f"{kept} documents were committed" in failure.value.message
        return kept
    finally:
        collection.close()


def test_ray_engine_builds_the_same_collection_as_local_and_resumes(
        ray_session: Any, corpus: Path, tmp_path: Path, minilm: Encoder) -> None:
    local_out = _index(corpus, tmp_path, "local", "--no-chunk")  # one vector per document
    assert f"added {DOCS}, updated 0, unchanged 0" in local_out

    driver = load_encoder("all-MiniLM-L6-v2", backend=BACKEND)
    kept = _fail_midway(corpus, tmp_path, "viaray", driver)
    ray_out = _index(corpus, tmp_path, "viaray", "--engine", "ray")  # the same job, resumed
    assert f"added {DOCS - kept}, updated 0, unchanged {kept}" in ray_out, ray_out
    # Truncation flags come back from the actors: the long texts of the resumed part count.
    texts = [json.loads(line)["body"] for line in corpus.read_text(encoding="utf-8").splitlines()]
    truncated = sum(driver.encode_batch(texts[kept:]).truncated)
    assert truncated > 0
    assert f"truncated {truncated}," in ray_out

    local, remote = _vectors(tmp_path, "local"), _vectors(tmp_path, "viaray")
    assert len(local) == len(remote) == DOCS
    assert sorted(local) == sorted(remote)
    worst = max(float(np.abs(local[i] - remote[i]).max()) for i in local)
    print(f"largest vector difference local vs ray: {worst:.2e}")
    assert worst <= 1e-5

    queries = [json.loads(line)["text"] for line in
               (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:10]]
    query_vectors = minilm.encode(queries, "query")
    results = []
    for name in ("local", "viaray"):
        collection = Collection.open(tmp_path, name)
        try:
            assert collection.count == DOCS
            results.append(collection.search(query_vectors, 10))
        finally:
            collection.close()
    for local_hits, ray_hits in zip(*results, strict=True):
        assert [h.doc_id for h in local_hits] == [h.doc_id for h in ray_hits]
        assert np.allclose([h.score for h in local_hits], [h.score for h in ray_hits], atol=1e-5)

    again = _index(corpus, tmp_path, "viaray", "--engine", "ray")
    assert f"added 0, updated 0, unchanged {DOCS}" in again


def _passages(data_dir: Path, name: str) -> dict[tuple[str, int], tuple[int, int, np.ndarray]]:
    uri = f"file:{data_dir / name / 'metadata.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute("SELECT d.doc_id, p.position, p.start_char, p.end_char, p.vector "
                            "FROM passages p JOIN documents d ON d.id = p.document").fetchall()
    return {(doc_id, position): (start, end, np.frombuffer(blob, dtype=np.float32))
            for doc_id, position, start, end, blob in rows}


def test_ray_engine_splits_passages_like_the_local_engine(
        ray_session: Any, corpus: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"  # 30 documents, 6 of them with their (long) abstract
    small.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:30]),
                     encoding="utf-8")
    chunk = ("--chunk-tokens", "64", "--chunk-overlap", "16")
    local_out = _index(small, tmp_path, "local", *chunk)
    ray_out = _index(small, tmp_path, "viaray", *chunk, "--engine", "ray")
    local, remote = _passages(tmp_path, "local"), _passages(tmp_path, "viaray")
    assert len(local) > 30 + 6 * 2  # the abstracts made several passages each
    assert f"30 documents in collection ({len(local)} passages)" in local_out
    assert f"30 documents in collection ({len(local)} passages)" in ray_out, ray_out
    assert sorted(local) == sorted(remote)
    assert all(local[key][:2] == remote[key][:2] for key in local)  # the same offsets
    worst = max(float(np.abs(local[key][2] - remote[key][2]).max()) for key in local)
    assert worst <= 1e-5
    again = _index(small, tmp_path, "viaray", *chunk, "--engine", "ray")
    assert "added 0, updated 0, unchanged 30" in again


def test_cuda_on_a_cluster_without_gpus_fails_before_anything_is_written(
        ray_session: Any, corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "index", str(corpus), "-c", "gpu", "--id-field", "_id", "--text-field", "body",
        "--data-dir", str(tmp_path), "--engine", "ray", "--device", "cuda", "-q"])
    assert result.exit_code == 1
    assert "--device cuda: the Ray cluster has no GPUs" in result.output
    collection = Collection.open(tmp_path, "gpu")
    try:
        assert collection.count == 0
    finally:
        collection.close()

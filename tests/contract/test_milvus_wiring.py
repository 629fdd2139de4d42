"""The Milvus backend wired in: the indexer CLI, the API's registry and services, its own limits."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.encoding import Encoder
from indexer.pipeline import encoder_model_info
from search_api.cli import cli
from search_api.config import ApiSettings
from search_api.services.collections import CollectionService
from search_api.services.documents import DocumentService
from search_api.services.registry import CollectionRegistry, EncoderRegistry
from search_api.services.search import Searcher
from storage import DocumentInput, DocumentNotFound, StorageError, content_hash
from storage.factory import default_milvus_uri, open_backend
from tests.contract.conftest import Corpus, require_milvus

ROWS = [
    {"id": "a", "text": "The cat sat on the warm windowsill", "kind": "pet"},
    {"id": "b", "text": "Stock markets fell sharply after the announcement", "kind": "finance"},
    {"id": "c", "text": "A recipe for tomato soup with basil", "kind": "food"},
]


@pytest.fixture(autouse=True)
def _milvus_installed() -> None:
    require_milvus()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in [k for k in __import__("os").environ if k.startswith("SEMSEARCH_")]:
        monkeypatch.delenv(key)
    return monkeypatch


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_cli_index_collections_delete_on_milvus(tmp_path: Path, milvus_lite_uri: str,
                                                clean_env: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    flags = ["--storage", "milvus", "--milvus-uri", milvus_lite_uri, "--data-dir", str(tmp_path)]
    code, out = invoke("index", str(corpus), "-c", name, "-q", *flags)
    assert code == 0, out
    assert "3 documents in collection" in out
    code, out = invoke("index", str(corpus), "-c", name, "-q", *flags)  # again: nothing changes
    assert code == 0 and "3 documents in collection" in out, out
    assert not (tmp_path / name).exists()  # nothing written to the FAISS data dir

    clean_env.setenv("SEMSEARCH_STORAGE", "milvus")  # the same settings from the environment
    clean_env.setenv("SEMSEARCH_MILVUS_URI", milvus_lite_uri)
    code, out = invoke("collections", "--json", "--data-dir", str(tmp_path))
    assert code == 0, out
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed[name] == {"name": name, "model": "all-MiniLM-L6-v2", "count": 3, "passages": 3}

    code, out = invoke("delete", "-c", name, "a", "zz", "--data-dir", str(tmp_path))
    assert code == 1 and "deleted 1" in out and "not found in" in out and "zz" in out, out
    code, out = invoke("index", str(corpus), "-c", name, "-q", "-m", "multilingual-e5-small",
                       "--data-dir", str(tmp_path))
    assert code == 1 and "was built with model 'all-MiniLM-L6-v2'" in out, out


def test_cli_says_what_to_fix_when_milvus_is_unreachable(tmp_path: Path,
                                                        clean_env: pytest.MonkeyPatch) -> None:
    code, out = invoke("collections", "--storage", "milvus", "--milvus-uri", "http://127.0.0.1:1",
                       "--data-dir", str(tmp_path))
    assert code == 1
    assert "cannot connect to milvus at http://127.0.0.1:1" in out
    assert "Traceback" not in out


def test_api_services_on_a_milvus_registry(tmp_path: Path, milvus_server_uri: str,
                                          minilm: Encoder, clean_env: pytest.MonkeyPatch) -> None:
    settings = ApiSettings(data_dir=tmp_path, storage="milvus", milvus_uri=milvus_server_uri,
                           micro_batch=False, query_cache_size=0)
    registry = CollectionRegistry.from_settings(settings)
    encoders = EncoderRegistry(allow_download=False, trust_remote_code=False,
                               preloaded={minilm.name: minilm})
    try:
        name = f"api-{uuid.uuid4().hex[:8]}"
        documents = DocumentService(settings, registry, encoders)
        outcome = documents.upsert(name, [{"id": r["id"], "text": r["text"],
                                           "metadata": {"kind": r["kind"]}} for r in ROWS], model=None)
        assert (outcome.added, outcome.collection.count) == (3, 3)
        assert name in registry.names()
        assert registry.info(name).count == 3

        searcher = Searcher(settings, registry, encoders)
        found = searcher.search(name, ["soup recipe", "my cat"], 2, mode="dense")
        assert [q.hits[0].doc_id for q in found.results] == ["c", "a"]
        filtered = searcher.search(name, ["soup recipe"], 3, {"kind": "finance"}, mode="dense")
        assert [h.doc_id for h in filtered.results[0].hits] == ["b"]
        for mode in ("lexical", "hybrid"):  # Milvus's own BM25, fused as on FAISS
            found = searcher.search(name, ["tomato soup", "cat windowsill"], 2, mode=mode)
            assert [q.hits[0].doc_id for q in found.results] == ["c", "a"], mode

        manifest, fields = CollectionService(registry).describe(name)
        assert (manifest.count, manifest.generation, fields) == (3, 1, ["kind"])
        documents.delete(name, "c")
        assert registry.get(name).count == 2
        with pytest.raises(DocumentNotFound):
            documents.delete(name, "c")
    finally:
        registry.close()


def test_text_too_long_for_milvus_is_a_clear_error(tmp_path: Path, milvus_lite_uri: str,
                                                   corpus: Corpus) -> None:
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        collection = backend.open_or_create(f"long-{uuid.uuid4().hex[:8]}", corpus.model)
        with pytest.raises(Exception, match="at most 65535 bytes") as error, collection.writer() as w:
            w.commit([DocumentInput(doc_id="ok", text="fine", vector=corpus.doc_vectors[0]),
                      DocumentInput(doc_id="long", text="é" * 40_000, vector=corpus.doc_vectors[1])])
        assert getattr(error.value, "status", None) == 400
        assert collection.count == 0  # checked before anything was written
    finally:
        backend.close()


def test_names_and_expressions_never_splice_user_text() -> None:
    from storage.milvus.schema import filter_expression, milvus_name, quote

    names = ["a_b", "a-b", "a.b", "a__b", "a_db", "a_pb", "A-b.c_d"]
    assert len({milvus_name(n) for n in names}) == len(names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", milvus_name(n)) for n in names)
    expression = filter_expression({"k": ['"] or true or ["', 1, True]}, {"k"})
    assert re.fullmatch(r'array_contains_any\(filter_tags, \["[0-9a-f]{32}"(, "[0-9a-f]{32}"){2}\]\)',
                        expression)
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_backend_choice_errors_and_defaults(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unknown storage backend 'chroma'"):
        open_backend("chroma", data_dir=tmp_path)
    with pytest.raises(StorageError, match="unknown milvus index"):
        open_backend("milvus", data_dir=tmp_path, milvus_uri="http://127.0.0.1:1", milvus_index="ivf")
    assert default_milvus_uri(tmp_path) == str(tmp_path / "milvus.db")


def test_hnsw_index_on_milvus(tmp_path: Path, milvus_lite_uri: str, corpus: Corpus) -> None:
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri, milvus_index="hnsw")
    try:
        collection = backend.open_or_create(f"hnsw-{uuid.uuid4().hex[:8]}", corpus.model)
        with collection.writer() as writer:
            writer.commit(corpus.documents())
        assert collection.manifest().index["type"] == "hnsw"
        for query, hits in enumerate(collection.search(corpus.query_vectors, 3)):
            expected = corpus.exact(query, 3)
            assert [h.doc_id for h in hits] == [d for d, _ in expected]
            assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    finally:
        backend.close()


def test_check_on_milvus_finds_a_commit_left_half_done(tmp_path: Path, milvus_lite_uri: str,
                                                        corpus: Corpus) -> None:
    """Rows deleted behind the catalog's back (as a crash mid-commit leaves them) fail the check."""
    from storage.milvus.schema import id_list, milvus_name

    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        name = f"chk-{uuid.uuid4().hex[:8]}"
        collection = backend.open_or_create(name, corpus.model)
        with collection.writer() as writer:
            writer.commit(corpus.documents())
        assert backend.check(name).ok
        backend.client.delete(milvus_name(name), filter=id_list(["bake-1", "zh-1"]))
        report = backend.check(name)
        assert not report.ok
        assert f"the catalog says {len(corpus.documents())} documents" in report.errors[0]
        assert f"Milvus holds {len(corpus.documents()) - 2}" in report.errors[0]
    finally:
        backend.close()


def test_collection_without_the_bm25_field_answers_dense_and_says_how_to_rebuild(
        tmp_path: Path, milvus_lite_uri: str, minilm: Encoder, clean_env: pytest.MonkeyPatch) -> None:
    """A collection as an older semsearch wrote it (no BM25 field): reopened, dense works, and
    lexical / hybrid are a 409 naming the fix, through the API's own services."""
    from pymilvus import MilvusClient

    from storage.milvus import schema
    from storage.milvus.lexical import LexicalIndexMissing

    name = f"old-{uuid.uuid4().hex[:8]}"
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        backend.open_or_create(name, encoder_model_info(minilm)).close()
        row = backend.row(name)  # type: ignore[attr-defined]
        client: MilvusClient = backend.client  # type: ignore[attr-defined]
        client.drop_collection(row.collection)  # recreated with the layout before the BM25 field
        old = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        for field in schema.data_schema(minilm.dimension).fields:
            if field.name not in ("lexical", "lexical_bm25"):
                old.add_field(field.name, field.dtype, **field.params,
                              **({"is_primary": True} if field.is_primary else {}),
                              **({"element_type": field.element_type}
                                 if field.element_type is not None else {}))
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        client.create_collection(row.collection, schema=old, index_params=index)
        vectors = minilm.encode([r["text"] for r in ROWS], "document")
        client.insert(row.collection, [
            {"doc_id": r["id"], "vector": v.tolist(), "text": r["text"],
             "content_hash": content_hash(r["text"]),
             "metadata": {"kind": r["kind"]}, "filter_tags": []} for r, v in zip(ROWS, vectors, strict=True)])
        backend.write_row(replace(row, generation=1, count=3, fields=("kind",)))  # type: ignore[attr-defined]
    finally:
        backend.close()

    settings = ApiSettings(data_dir=tmp_path, storage="milvus", milvus_uri=milvus_lite_uri,
                           micro_batch=False, query_cache_size=0)
    registry = CollectionRegistry.from_settings(settings)
    encoders = EncoderRegistry(allow_download=False, trust_remote_code=False,
                               preloaded={minilm.name: minilm})
    try:
        searcher = Searcher(settings, registry, encoders)
        found = searcher.search(name, ["tomato soup"], 1, mode="dense")
        assert found.results[0].hits[0].doc_id == "c"
        for mode in ("lexical", "hybrid"):
            with pytest.raises(LexicalIndexMissing, match="re-index") as error:
                searcher.search(name, ["tomato soup"], 1, mode=mode)
            assert (error.value.status, error.value.code) == (409, "lexical_index_missing")
    finally:
        registry.close()
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        report = backend.check(name)
        assert report.ok and any("no BM25 field" in w for w in report.warnings), report
    finally:
        backend.close()

    flags = ["--storage", "milvus", "--milvus-uri", milvus_lite_uri, "--data-dir", str(tmp_path)]
    code, out = invoke("upgrade", "-c", name, *flags)
    assert code == 0 and "3 documents copied" in out, out
    code, out = invoke("upgrade", "-c", name, *flags)
    assert code == 0 and "up to date" in out, out
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        report = backend.check(name)
        assert report.ok and report.warnings == [] and report.count == 3, report
        upgraded = backend.open(name)
        hits = upgraded.lexical_search(["tomato soup"], 1)[0]
        assert [(h.doc_id, h.metadata) for h in hits] == [("c", {"kind": "food"})]
        dense = upgraded.search(minilm.encode(["my cat"], "query"), 1)[0]
        assert dense[0].doc_id == "a"  # the vectors came along
        upgraded.close()
    finally:
        backend.close()


def test_faq_import_calibrate_and_match_on_milvus(tmp_path: Path, milvus_lite_uri: str,
                                                  minilm: Encoder) -> None:
    """FAQ settings live in Milvus (semsearch_faq), keyed to the collection's uid."""
    from indexer.faq import (
        calibrate_faq,
        import_faq,
        match_queries,
        question_id,
        read_faq,
        read_labelled,
    )
    from storage.faq_store import NotAnFaq, require_faq

    faq_dir = Path(__file__).resolve().parents[1] / "data" / "faq"
    entries = read_faq(faq_dir / "support_en.yaml")
    name = f"faq-{uuid.uuid4().hex[:8]}"
    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        stats = import_faq(backend, name, minilm, entries, default_threshold=0.25)
        assert stats.questions == stats.added > 0 and stats.threshold == 0.25
        collection = backend.open(name)
        assert collection.doc_ids() == {question_id(e.intent, q) for e in entries for q in e.questions}
        result = calibrate_faq(collection, minilm, read_labelled(faq_dir / "labelled_en.jsonl"),
                               mode="hybrid")
        assert result.accuracy_at_1 == 1.0
        config = backend.open(name).faq_config()  # another handle reads what was stored
        assert config is not None and (config.threshold, config.mode) == (result.threshold, "hybrid")
        again = import_faq(backend, name, minilm, entries, default_threshold=0.9)
        assert again.unchanged == stats.added and again.threshold == result.threshold
        ranked, _ = match_queries(collection, minilm, ["How can I get my money back?"], mode="hybrid")
        assert ranked[0][0].intent == "refund"
        plain = backend.open_or_create(f"plain-{uuid.uuid4().hex[:8]}", collection.model)
        with pytest.raises(NotAnFaq):
            require_faq(plain.faq_config(), plain.name)
    finally:
        backend.close()


def test_many_queries_are_split_into_requests_gRPC_can_answer(
        tmp_path: Path, milvus_lite_uri: str, corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hits carry their texts: 3,219 queries x top 100 once made a 504 MB answer (gRPC: 256 MB)."""
    from storage.milvus import client

    backend = open_backend("milvus", data_dir=tmp_path, milvus_uri=milvus_lite_uri)
    try:
        collection = backend.open_or_create(f"split-{uuid.uuid4().hex[:8]}", corpus.model)
        with collection.writer() as writer:
            writer.commit(corpus.documents())
        texts = ["bread baking", "football final", "galaxy telescope", "neural networks"]
        whole = (collection.search(corpus.query_vectors, 3), collection.lexical_search(texts, 3))
        monkeypatch.setattr(client, "HITS_PER_REQUEST", 3)  # one query per request
        assert client.queries_per_request(3) == 1 and client.queries_per_request(10_000) == 1
        split = (collection.search(corpus.query_vectors, 3), collection.lexical_search(texts, 3))
        for got, want in zip(split, whole, strict=True):
            assert [[h.doc_id for h in hits] for hits in got] == [[h.doc_id for h in hits]
                                                                  for hits in want]
            assert [h.score for hits in got for h in hits] == pytest.approx(
                [h.score for hits in want for h in hits], abs=1e-5)
        assert len(split[0]) == 4 and all(len(hits) == 3 for hits in split[0])
    finally:
        backend.close()

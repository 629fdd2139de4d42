"""Passages on every storage backend: long documents split, each answered with its best passage.

One chunked collection per backend (FAISS + SQLite, milvus-lite `.db`, milvus-lite server)
is shared by the tests of this module; the last test changes it. Vectors are real
all-MiniLM-L6-v2 embeddings of passages cut by the indexer's own splitter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from indexer.chunking import split_passages
from indexer.encoding import Encoder
from indexer.pipeline import attach_vectors, encoder_model_info
from storage import DocumentInput, DocumentNotFound
from storage.backend import Backend, CollectionHandle
from storage.fusion import MODES, search_in_mode
from storage.records import Chunking, PassageInput, PassageSpan
from tests.contract.conftest import BACKENDS, make_backend

CHUNKING = Chunking(tokens=48, overlap=12)
VOLCANO = (
    "Volcanoes form where molten rock rises through the crust of the Earth. Most of them sit "
    "along the boundaries of tectonic plates, where one plate sinks below another. Magma "
    "collects in chambers a few kilometres below the surface. When the pressure of the gas "
    "dissolved in it grows too high, the magma forces its way up and erupts. Lava flows move "
    "slowly, but clouds of hot gas and rock can race down a slope faster than a car. "
    "Geologists watch the swelling of the ground and the gases in the air to warn people. In "
    "2010 the ash cloud of an Icelandic eruption closed the airspace of Europe and grounded "
    "thousands of flights for almost a week.")
BEES = (
    "Honey bees live in colonies of tens of thousands of workers and a single queen. The "
    "workers are females that never lay eggs while the queen is healthy. Young workers clean "
    "the cells and feed the larvae; older ones guard the entrance and forage for nectar. A "
    "forager that finds a rich patch of flowers returns and performs a waggle dance. The angle "
    "of the dance tells the other bees the direction of the flowers relative to the sun, and "
    "its length tells them the distance. Farmers rent hives to pollinate almond orchards, "
    "which could not produce a crop without them.")
TRAINS = (
    "The first public railway to carry passengers with steam locomotives opened in England in "
    "1825. Within a few decades rails crossed every industrial country. Railways changed how "
    "people measured time: towns had kept their own local noon, and the timetables forced a "
    "standard time across whole regions. Today high-speed trains in Japan, France and China "
    "run at more than three hundred kilometres an hour on dedicated lines. Magnetic levitation "
    "trains float above the track and have no wheels touching the rail at all.")
DOCS = [
    ("volcano", VOLCANO, {"topic": "science"}),
    ("bees", BEES, {"topic": "nature"}),
    ("trains", TRAINS, {"topic": "history"}),
    ("bread", "How to bake sourdough bread at home with a starter", {"topic": "cooking"}),
    ("football", "The football team won the championship final last night", {"topic": "sport"}),
    ("python", "Python is a popular programming language for data science", {"topic": "tech"}),
    ("galaxy", "The telescope captured images of a distant galaxy", {"topic": "science"}),
]
# (query, the document it must find first, that document's passage must be past its first)
DEEP_QUERIES = [("volcanic ash cloud grounded flights over Europe", "volcano", True),
                ("almond orchards pollinated by rented hives", "bees", True),
                ("magnetic levitation trains without wheels", "trains", True),
                ("baking sourdough bread", "bread", False)]


@dataclass(kw_only=True)
class Shared:
    """A backend with the chunked collection of DOCS, and what the splitter made of each text."""

    kind: str
    backend: Backend
    collection: CollectionHandle
    spans: dict[str, list[PassageSpan]]
    reopen: dict[str, str]  # how a new process opens the same storage


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           minilm: Encoder) -> Iterator[Shared]:
    data_dir = tmp_path_factory.mktemp("passages") / "data"
    backend = make_backend(request.param, request, data_dir)
    reopen = {"storage": "faiss" if request.param == "faiss" else "milvus", "data_dir": str(data_dir),
              "milvus_uri": getattr(backend, "uri", "") if request.param == "milvus-server" else ""}
    collection = backend.open_or_create(f"p-{uuid.uuid4().hex[:10]}", encoder_model_info(minilm),
                                        CHUNKING)
    docs = [DocumentInput(doc_id=doc_id, text=text, metadata=meta) for doc_id, text, meta in DOCS]
    prepared, _ = attach_vectors(collection, minilm, docs)
    with collection.writer() as writer:
        writer.commit(prepared)
    spans = {doc_id: split_passages(text, minilm.count_tokens, CHUNKING) for doc_id, text, _ in DOCS}
    yield Shared(kind=request.param, backend=backend, collection=collection, spans=spans,
                 reopen=reopen)
    collection.close()
    backend.close()


def test_long_documents_are_split_and_both_counts_reported(shared: Shared) -> None:
    collection, spans = shared.collection, shared.spans
    assert all(len(spans[doc_id]) >= 3 for doc_id in ("volcano", "bees", "trains"))
    total = sum(len(found) for found in spans.values())
    assert (collection.count, collection.passage_count) == (len(DOCS), total)
    assert collection.chunking == CHUNKING
    manifest = collection.manifest()
    assert (manifest.chunking, manifest.passages) == ({"tokens": 48, "overlap": 12}, total)
    info = shared.backend.info(collection.name)
    assert (info.count, info.chunking, info.passages) == (len(DOCS), CHUNKING, total)
    assert shared.backend.check(collection.name).ok
    assert collection.get("volcano").text == VOLCANO  # the document, not a passage


@pytest.mark.parametrize("mode", MODES)
def test_top_k_counts_documents_each_with_the_passage_that_matched(
        shared: Shared, minilm: Encoder, mode: str) -> None:
    queries = [query for query, _, _ in DEEP_QUERIES]
    vectors = minilm.encode(queries, "query")
    found = search_in_mode(shared.collection, mode, texts=queries,  # type: ignore[arg-type]
                           vectors=None if mode == "lexical" else vectors, k=5)
    texts = {doc_id: text for doc_id, text, _ in DOCS}
    for hits, (query, expected, deep) in zip(found, DEEP_QUERIES, strict=True):
        ids = [hit.doc_id for hit in hits]
        assert ids[0] == expected, (shared.kind, mode, query, ids)
        assert len(set(ids)) == len(ids) and len(ids) == (5 if mode != "lexical" else len(ids))
        for hit in hits:
            assert hit.passage is not None and hit.text == texts[hit.doc_id]
            assert hit.passage == shared.spans[hit.doc_id][hit.passage.index]
        assert (hits[0].passage is not None and hits[0].passage.index > 0) == deep, hits[0].passage
    top = found[0][0]
    assert top.passage is not None
    assert "Icelandic eruption" in top.text[top.passage.start:top.passage.end]


def test_filters_apply_to_the_document_metadata(shared: Shared, minilm: Encoder) -> None:
    vectors = minilm.encode(["volcanic eruption and telescopes"], "query")
    dense = shared.collection.search(vectors, 5, {"topic": "science"})[0]
    assert sorted(hit.doc_id for hit in dense) == ["galaxy", "volcano"]
    lexical = shared.collection.lexical_search(["eruption telescope bees"], 5, {"topic": "science"})[0]
    assert sorted(hit.doc_id for hit in lexical) == ["galaxy", "volcano"]


REOPEN_SCRIPT = """
import json, sys
from indexer.encoding import load_encoder
from storage.factory import open_backend
from storage.fusion import search_in_mode
args = json.loads(sys.argv[1])
from pathlib import Path
backend = open_backend(args["storage"], data_dir=Path(args["data_dir"]),
                       milvus_uri=args["milvus_uri"] or None)
collection = backend.open(args["name"])
encoder = load_encoder("all-MiniLM-L6-v2", backend="torch")
query = "volcanic ash cloud grounded flights over Europe"
out = {"count": collection.count, "passages": collection.passage_count,
       "chunking": collection.manifest().chunking}
for mode in ("dense", "lexical", "hybrid"):
    hit = search_in_mode(collection, mode, texts=[query], vectors=encoder.encode([query], "query"),
                         k=1)[0][0]
    out[mode] = [hit.doc_id, hit.passage.index, hit.passage.start, hit.passage.end]
collection.close()
backend.close()
print(json.dumps(out))
"""


def test_a_new_process_reopens_the_passages(request: pytest.FixtureRequest, shared: Shared) -> None:
    """Closed here, read by another process, reopened here."""
    if shared.kind == "milvus-lite":
        # pymilvus keeps a `.db`'s milvus-lite running after close(), and a `.db` serves one
        # process: test_milvus_reopen.py writes and reads one from successive CLI processes.
        pytest.skip("a milvus-lite .db is reopened by CLI processes in test_milvus_reopen.py")
    name, counts = shared.collection.name, (shared.collection.count, shared.collection.passage_count)
    shared.collection.close()
    shared.backend.close()
    args = {**shared.reopen, "name": name}
    try:
        done = subprocess.run([sys.executable, "-c", REOPEN_SCRIPT, json.dumps(args)],
                              capture_output=True, text=True, timeout=300)
    finally:
        shared.backend = make_backend(shared.kind, request, Path(shared.reopen["data_dir"]))
        shared.collection = shared.backend.open(name)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["count"], out["passages"]) == counts
    assert (shared.collection.count, shared.collection.passage_count) == counts
    assert out["chunking"] == {"tokens": 48, "overlap": 12}
    volcano = {(p.index, p.start, p.end) for p in shared.spans["volcano"]}
    for mode in MODES:
        assert out[mode][0] == "volcano" and tuple(out[mode][1:]) in volcano, (mode, out)


def sentences_doc(minilm: Encoder, doc_id: str, sentences: list[str]) -> DocumentInput:
    """A document with one passage per sentence (real vectors), as a splitter could cut it."""
    text = " ".join(sentences)
    vectors, passages, start = minilm.encode(sentences, "document"), [], 0
    for i, (sentence, vector) in enumerate(zip(sentences, vectors, strict=True)):
        passages.append(PassageInput(span=PassageSpan(index=i, start=start, end=start + len(sentence)),
                                     vector=np.asarray(vector)))
        start += len(sentence) + 1
    return DocumentInput(doc_id=doc_id, text=text, metadata={"topic": "changing"},
                         passages=tuple(passages))


def test_lexical_search_scores_whole_documents(shared: Shared, minilm: Encoder) -> None:
    """BM25 over the whole document: only `spread` holds both terms, each in another passage;
    ranked by its best passage it would come after `repeat`, whose one passage says one term
    three times."""
    spread = sentences_doc(minilm, "spread", ["A quokka smiled at the visitors.",
                                              "A zeppelin floated over the island."])
    repeat = sentences_doc(minilm, "repeat", ["Quokka, quokka, quokka: the island's mascot.",
                                              "Nothing else is said here."])
    with shared.collection.writer() as writer:
        writer.commit([spread, repeat])
    try:
        hits = shared.collection.lexical_search(["quokka zeppelin"], 2)[0]
        assert [hit.doc_id for hit in hits] == ["spread", "repeat"], shared.kind
        assert hits[0].passage is not None and hits[0].passage.index == 0  # first of a tie
        assert hits[1].passage is not None and hits[1].passage.index == 0
        assert shared.collection.lexical_search(["quokka"], 5, {"topic": "science"}) == [[]]
    finally:
        with shared.collection.writer() as writer:
            writer.commit(deletes=["spread", "repeat"])


def test_upsert_replaces_all_passages_and_delete_removes_them(shared: Shared,
                                                              minilm: Encoder) -> None:
    """Runs last: it changes the shared collection (and puts it back)."""
    collection, before = shared.collection, shared.collection.passage_count
    assert before is not None
    long_sentences = [f"Chapter {i} of the lighthouse keeper's diary describes storm number {i}."
                      for i in range(10)]
    with collection.writer() as writer:
        writer.commit([sentences_doc(minilm, "diary", long_sentences)])
    assert (collection.count, collection.passage_count) == (len(DOCS) + 1, before + 10)
    short = ["The lighthouse was automated.", "Nobody keeps a diary there any more."]
    with collection.writer() as writer:
        stats = writer.commit([sentences_doc(minilm, "diary", short)])
    assert stats.updated == 1
    assert (collection.count, collection.passage_count) == (len(DOCS) + 1, before + 2)
    assert shared.backend.check(collection.name).ok
    query = "storm number 7 in the lighthouse keeper's diary"
    for mode in MODES:
        hits = search_in_mode(collection, mode, texts=[query],
                              vectors=minilm.encode([query], "query"), k=len(DOCS) + 1)[0]
        diary = [hit for hit in hits if hit.doc_id == "diary"]
        assert len(diary) == 1 and diary[0].passage is not None, (shared.kind, mode)
        assert diary[0].passage.index < 2 and diary[0].text == " ".join(short)
        assert diary[0].text[diary[0].passage.start:diary[0].passage.end] in short
    with collection.writer() as writer:
        assert writer.commit(deletes=["diary"]).deleted == 1
    assert (collection.count, collection.passage_count) == (len(DOCS), before)
    with pytest.raises(DocumentNotFound):
        collection.get("diary")
    for mode in MODES:
        hits = search_in_mode(collection, mode, texts=[query],
                              vectors=minilm.encode([query], "query"), k=len(DOCS))[0]
        assert "diary" not in {hit.doc_id for hit in hits}

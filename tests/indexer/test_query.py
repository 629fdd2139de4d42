"""indexer.query.encode_and_search: the one encode-then-search step, with a real model and index."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.encoding import Encoder
from indexer.query import encode_and_search
from storage import Collection


@pytest.fixture
def docs(data_dir: Path) -> Collection:
    return Collection.open(data_dir, "docs")


def test_dense_finds_the_paraphrased_document(docs: Collection, minilm: Encoder) -> None:
    found = encode_and_search(docs, minilm, ["baking bread at home", "distant galaxies in space"],
                              mode="dense", k=2)
    assert [hits[0].doc_id for hits in found.hits] == ["bake-1", "space-1"]
    assert found.truncated == [False, False]
    assert found.hits[0][0].score > found.hits[0][1].score


def test_lexical_needs_no_model_and_dense_does(docs: Collection) -> None:
    found = encode_and_search(docs, None, ["sourdough starter"], mode="lexical", k=1)
    assert found.hits[0][0].doc_id == "bake-1"
    with pytest.raises(ValueError, match="needs the collection's encoder"):
        encode_and_search(docs, None, ["sourdough starter"], mode="hybrid", k=1)


def test_filters_apply_and_long_queries_are_flagged(docs: Collection, minilm: Encoder) -> None:
    long_query = " ".join(["telescope"] * (minilm.max_length + 50))
    found = encode_and_search(docs, minilm, [long_query], mode="hybrid", k=3,
                              filter_={"topic": "sport"})
    assert found.truncated == [True]
    assert found.hits[0] and {hit.metadata["topic"] for hit in found.hits[0]} == {"sport"}

"""Cross-encoder rerankers: the bundled MiniLM-L-12 (int8 ONNX), ONNX and CrossEncoder folders."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from indexer.encoding import bundled
from indexer.rerank import (
    MINILM_RERANKER,
    Reranker,
    UnknownReranker,
    fused_order,
    load_reranker,
    relevance,
    resolve_reranker_name,
)

QUERY = "How many people live in Berlin?"
RELEVANT = "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 km2."
OTHER = "New York City is famous for the Metropolitan Museum of Art."


@pytest.fixture(scope="session")
def minilm_reranker() -> Reranker:
    return load_reranker(MINILM_RERANKER, threads=2)


def test_bundled_reranker_ranks_the_answer_first(minilm_reranker: Reranker) -> None:
    scored = minilm_reranker.score(QUERY, [OTHER, RELEVANT])
    assert scored.truncated == [False, False]
    assert scored.scores[1] > 5 > -5 > scored.scores[0]  # published model: about +9 and -11
    assert minilm_reranker.backend == "onnx-int8"
    assert 0 < relevance(scored.scores)[0] < 0.01 < 0.99 < relevance(scored.scores)[1] < 1


# Five claims or questions, each with an obvious answer and an obvious distractor.
SANITY = [
    ("How many people live in Berlin?",
     "Berlin has a population of 3.5 million registered inhabitants.",
     "Paris is the capital of France and known for the Eiffel tower."),
    ("what causes rain",
     "Rain forms when water vapour in clouds condenses into droplets heavy enough to fall.",
     "The stock market fell sharply on Monday after weak earnings."),
    ("Vitamin D deficiency increases the risk of bone fractures.",
     "Low serum vitamin D levels were associated with a higher incidence of hip fracture in "
     "elderly adults.",
     "We describe a new algorithm for sorting integers in linear time."),
    ("symptoms of influenza",
     "Influenza typically causes fever, cough, sore throat, muscle aches and fatigue.",
     "The violin has four strings tuned in perfect fifths."),
    ("Aspirin reduces the risk of heart attack.",
     "In a randomized trial, low-dose aspirin lowered the rate of myocardial infarction.",
     "Photosynthesis converts light energy into chemical energy in plants."),
]


@pytest.mark.parametrize(("query", "relevant", "distractor"), SANITY)
def test_sanity_set_relevant_far_above_irrelevant(minilm_reranker: Reranker, query: str,
                                                   relevant: str, distractor: str) -> None:
    logits = minilm_reranker.score(query, [distractor, relevant]).scores
    assert logits[1] > 2 and logits[1] - logits[0] > 10  # measured: +2.9..+9.0 vs about -11


def test_pairs_are_query_first_with_bert_segments(minilm_reranker: Reranker) -> None:
    encoding = minilm_reranker._tokenizer.encode("What is a Cat?", "A cat is an animal.")  # type: ignore[attr-defined]
    assert encoding.tokens == ["[CLS]", "what", "is", "a", "cat", "?", "[SEP]",
                               "a", "cat", "is", "an", "animal", ".", "[SEP]"]
    assert encoding.type_ids == [0] * 7 + [1] * 7
    # longest_first: a long text is cut, the short query is kept whole
    long_pair = minilm_reranker._tokenizer.encode("short query", "word " * 600)  # type: ignore[attr-defined]
    assert len(long_pair.ids) == 512 and long_pair.tokens[:4] == ["[CLS]", "short", "query", "[SEP]"]


def test_fused_order_none_is_the_cross_encoder_order() -> None:
    assert fused_order([3.0, 2.0, 1.0], np.array([0.1, 5.0, -2.0])) == [1, 0, 2]


def test_fused_order_rrf_meets_halfway() -> None:
    # first stage a > b > c > d; cross-encoder d > c > b > a: a and d tie at the top (the first
    # stage's order breaks ties), then b and c.
    assert fused_order([4, 3, 2, 1], np.array([1.0, 2.0, 3.0, 4.0]), fusion="rrf") == [0, 3, 1, 2]
    # the cross-encoder moves the first stage's last hit to its top: rrf puts it in the middle
    logits = np.array([5.0, 4.0, 3.0, 2.0, 9.0])
    assert fused_order([5, 4, 3, 2, 1], logits, fusion="rrf") == [0, 1, 4, 2, 3]


def test_fused_order_weighted_spans_both_orders() -> None:
    first, logits = [0.9, 0.5, 0.1], np.array([-3.0, 0.0, 4.0])
    assert fused_order(first, logits, fusion="weighted", weight=1.0) == [2, 1, 0]
    assert fused_order(first, logits, fusion="weighted", weight=0.0) == [0, 1, 2]
    # normalised: first 1, .5, 0; cross-encoder 0, 3/7, 1; at 0.4: .6, .47, .4
    assert fused_order(first, logits, fusion="weighted", weight=0.4) == [0, 1, 2]
    assert fused_order([1.0, 1.0], np.array([2.0, 2.0]), fusion="weighted") == [0, 1]


def test_a_score_does_not_depend_on_the_other_texts(minilm_reranker: Reranker) -> None:
    texts = [f"{'word ' * n}Berlin is a city of {n} people" for n in range(1, 12)] + [RELEVANT]
    alone = np.array([minilm_reranker.score(QUERY, [t]).scores[0] for t in texts])
    order = list(range(len(texts)))
    random.Random(1).shuffle(order)
    together = minilm_reranker.score(QUERY, [texts[i] for i in order]).scores
    # Exact: the built-in scores each pair alone (int8 activations are quantised per run).
    assert np.allclose(together, alone[order], atol=1e-5)
    assert int(np.argmax(together)) == order.index(len(texts) - 1)


def test_truncation_is_reported_per_pair(minilm_reranker: Reranker) -> None:
    scored = minilm_reranker.score(QUERY, [RELEVANT, "Berlin " * 600, "x" * 100_000])
    assert scored.truncated == [False, True, True]
    assert minilm_reranker.score(QUERY, []).scores.shape == (0,)


def test_pinned_sums_match_the_wheel_checksums_for_the_weights() -> None:
    sums = json.loads((bundled.package_folder() / "models" / "checksums.json").read_text())
    for folder, files in bundled.PINNED_SHA256.items():
        assert sums[folder]["model.onnx"] == files["model.onnx"]


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "model.onnx"
    damaged.write_bytes(b"not the model")
    with pytest.raises(bundled.BundledModelUnavailable, match="sha256"):
        bundled._check(damaged, bundled.PINNED_SHA256[bundled.RERANKER_DIR]["model.onnx"])
    with pytest.raises(bundled.BundledModelUnavailable, match="cannot read"):
        bundled._check(tmp_path / "absent", "0" * 64)


@pytest.mark.parametrize("name", ["", "  ", "no-such-reranker", "/nonexistent/folder", "~nouser/x"])
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(UnknownReranker):
        load_reranker(name)


def test_an_empty_folder_is_not_a_reranker(tmp_path: Path) -> None:
    with pytest.raises(UnknownReranker, match="CrossEncoder"):
        load_reranker(str(tmp_path))


def test_an_onnx_folder_scores_like_the_builtin(tmp_path: Path, minilm_reranker: Reranker) -> None:
    source = bundled.model_folder(bundled.RERANKER_DIR)
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").symlink_to(source / "model.onnx")
    (tmp_path / "tokenizer.json").symlink_to(source / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text('{"model_max_length": 128}')
    folder = load_reranker(str(tmp_path), threads=1, batch_size=1)
    assert folder.name == str(tmp_path.resolve()) == resolve_reranker_name(str(tmp_path))
    assert folder.backend == "onnx" and folder.max_length == 128
    texts = [OTHER, RELEVANT]
    assert np.allclose(folder.score(QUERY, texts).scores,
                       minilm_reranker.score(QUERY, texts).scores, atol=1e-4)
    assert folder.score(QUERY, ["Berlin " * 200]).truncated == [True]


def test_a_crossencoder_folder_runs_on_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = bundled.model_folder(bundled.RERANKER_DIR) / "vocab.txt"
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), model_max_length=32)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        max_position_embeddings=64)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reranker = load_reranker(str(tmp_path), threads=1)
    assert reranker.backend == "torch" and reranker.max_length == 32
    texts = ["a short text", "word " * 60, "another one"]
    scored = reranker.score("a query", texts)
    assert scored.truncated == [False, True, False]
    reference = CrossEncoder(str(tmp_path), device="cpu").predict(
        [("a query", t) for t in texts], activation_fn=torch.nn.Identity())
    assert np.allclose(scored.scores, reference, atol=1e-5)

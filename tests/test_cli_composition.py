"""The CLI composition root: one command set for `semsearch` and `python -m indexer`, built
without changing the indexer's groups, and one rule for flags over SEMSEARCH_* variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import indexer.__main__ as indexer_main
from indexer import cli as indexer_cli
from indexer.cli_options import settings_from_flags
from indexer.faq_cli import faq
from indexer.settings import IndexerSettings
from search_api.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def command_names(help_text: str) -> list[str]:
    """The names listed under "Commands:" in a click --help page."""
    section = help_text.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  (\S+)", section, flags=re.MULTILINE)]


def test_python_m_indexer_lists_the_same_commands_as_semsearch() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "indexer", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = command_names(done.stdout)
    semsearch = CliRunner().invoke(cli, ["--help"])
    assert semsearch.exit_code == 0
    assert listed == command_names(semsearch.output)
    assert {"index", "delete", "collections", "check", "faq", "serve", "demo"} <= set(listed)


def test_python_m_indexer_says_what_to_install_when_the_command_is_missing(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        indexer_main.run("semsearch-not-installed")
    assert "'semsearch-not-installed' command is not installed" in str(raised.value.code)
    assert "pip install -e ." in str(raised.value.code)


def test_composition_leaves_the_indexer_groups_unchanged() -> None:
    # search_api.cli is imported above: had it registered commands on these groups, they would show.
    assert sorted(indexer_cli.cli.commands) == ["check", "collections", "delete", "index", "train",
                                                "upgrade"]
    assert sorted(faq.commands) == ["calibrate", "import"]
    assert sorted(cli.commands) == ["check", "collections", "delete", "demo", "faq", "index", "serve",
                                    "train", "upgrade"]
    assert cli.commands["index"] is indexer_cli.cli.commands["index"]


def test_a_flag_overrides_the_environment_and_an_absent_flag_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMSEARCH_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("SEMSEARCH_BATCH_SIZE", "7")
    settings = settings_from_flags(IndexerSettings, data_dir=tmp_path / "from-flag", batch_size=None)
    assert settings.data_dir == tmp_path / "from-flag"
    assert settings.batch_size == 7


def test_a_bad_environment_variable_is_a_one_line_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMSEARCH_FAQ_SEARCH_DEPTH", "0")
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"query": "q", "intent": "a"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["faq", "calibrate", "--name", "x", str(labelled),
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "SEMSEARCH_FAQ_SEARCH_DEPTH" in result.output
    assert "Traceback" not in result.output

"""Every command's `--help` shows its examples one per line, as written in its docstring."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from search_api.cli import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def _examples(command: click.Command) -> list[str]:
    """The lines under `Example:` in the command's docstring, stripped."""
    lines = (command.help or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Example:")
    return [line.strip() for line in lines[start + 1:] if line.strip() and line.strip() != "\b"]


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


ALL = list(_commands(cli))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in ALL}
    assert {"", "index", "delete", "collections", "check", "serve", "demo", "faq",
            "faq import", "faq calibrate"} <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "semsearch")
def test_help_keeps_each_example_on_its_own_line(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    examples = _examples(_command(path))
    assert examples, f"semsearch {' '.join(path)} has no example"
    shown = [line.strip() for line in result.output.splitlines()]
    for example in examples:
        assert example in shown, f"{example!r} is not a line of:\n{result.output}"

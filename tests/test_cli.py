"""The command line itself: every command and benchmark answers --help."""

from __future__ import annotations

import argparse

import pytest

from autotrain_runner.cli import main as cli


def _every_parser(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _every_parser(child, (*path, name))


@pytest.mark.parametrize("path", [p for p, _ in _every_parser(cli._parser())], ids=" ".join)
def test_every_command_answers_help(path, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([*path, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: atr")


def test_serve_takes_how_many_requests_may_wait(capsys):
    parsed = cli._parser().parse_args(["serve", "p", "--max-waiting", "3"])
    assert parsed.max_waiting == 3 and cli._parser().parse_args(["serve", "p"]).max_waiting == 8
    with pytest.raises(SystemExit) as done:
        cli._parser().parse_args(["serve", "p", "--max-waiting", "0"])
    assert done.value.code == 2 and "--max-waiting: must be 1 or more, got 0" in capsys.readouterr().err

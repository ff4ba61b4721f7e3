"""The ``mlbatch`` parser: every default shown, the model positional, ranges refused, exit codes documented.

Subcommands are discovered from the parser, so commands added later are held
to the same rules. Running the command itself: tests/e2e/test_cli_errors.py.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from mlbatch.cli import exits
from mlbatch.cli.parser import build_parser

FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand by its full name, ``registry sign`` included."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


SUBCOMMANDS = _subparsers(build_parser())


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_option_of_every_subcommand_shows_its_default(name: str):
    sub = SUBCOMMANDS[name]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or isinstance(action, FLAGS) or action.default is argparse.SUPPRESS:
            continue
        shown = formatter._expand_help(action) if action.help else ""
        assert "default" in shown or "required" in shown, (name, action.option_strings, shown)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_the_model_is_a_required_positional_argument_wherever_there_is_one(name: str):
    for action in SUBCOMMANDS[name]._actions:
        assert "--model" not in action.option_strings, name
        if action.dest in ("model", "models"):
            assert not action.option_strings and action.nargs in (None, "+"), (name, action)


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "churn", "--cores", "0"],
        ["backfill", "churn", "--start", "2026-01-01", "--end", "2026-01-02", "--max-parallel", "65"],
        ["generate", "--days", "-1"],
        ["generate", "--rows-per-day", "0"],
        ["retrain", "churn", "--window-days", "0"],
        ["serve", "churn", "--port", "-1"],
        ["serve", "churn", "--workers", "65"],
        ["serve", "churn", "--poll-seconds", "-2"],
        ["card", "churn", "--version", "0"],
    ],
)
def test_a_value_out_of_range_is_a_usage_error(argv: list[str], capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == exits.USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mlbatch ") and "is not allowed" in lines[0], lines


def test_debug_is_accepted_before_and_after_the_command():
    assert build_parser().parse_args(["--debug", "versions", "churn"]).debug is True
    assert build_parser().parse_args(["versions", "churn", "--debug"]).debug is True
    assert build_parser().parse_args(["versions", "churn"]).debug is False


def test_the_exit_codes_are_in_the_help_and_in_the_operations_guide(repo_root: Path):
    codes = {exits.OK, exits.FAILED, exits.USAGE, exits.REJECTED, exits.PARTIAL}
    assert len(codes) == 5
    help_text = build_parser().format_help()
    assert {int(c) for c in re.findall(r"^  (\d)  ", help_text, re.MULTILINE)} == codes
    guide = (repo_root / "docs" / "operations.md").read_text()
    assert {int(c) for c in re.findall(r"^\| (\d) \|", guide, re.MULTILINE)} == codes


def test_main_leaves_no_log_handler_behind(tmp_path):
    """``main`` may run many times in one process (the tests, a notebook): a handler it left on the root logger
    would write to a stream closed since, and every later log record would fail (as it did across the suite)."""
    import logging

    from mlbatch import cli

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    assert cli.main(["--root", str(tmp_path / "no-lake"), "versions", "churn"]) == 1  # fails after logging is set
    assert root.handlers == handlers and root.level == level

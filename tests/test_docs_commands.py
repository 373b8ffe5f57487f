"""Every `vireo ...` command line shown in the docs parses with the real CLI (no 'unexpected extra
argument'): the commands a reader copies must be the commands we ship."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer.main

from vireo.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER_VALUES = {"M": "smollm2-135m", "Q": "int8", "DIR": "/tmp/out", "N": "2", "FOLDER": "/tmp/out"}


def documented_commands() -> list[tuple[str, str]]:
    """(file, command line) for each shell line in a code block that starts with `vireo `."""
    found = []
    for doc in DOCS:
        in_block = False
        for line in doc.read_text().splitlines():
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            if in_block and line.lstrip().startswith("vireo "):
                found.append((doc.name, line.split("#", 1)[0].strip()))
    return found


def concrete_args(line: str) -> list[str]:
    """One concrete call: `[--a | --b]` and `[--c X]` optional parts dropped, `a|b` choices take the first."""
    line = re.sub(r"\[[^\[\]]*\]", "", re.sub(r"\[[^\[\]]*\]", "", line))  # nested [..[..]..] too
    args = shlex.split(line)[1:]
    return [PLACEHOLDER_VALUES.get(a, a.split("|")[0]) for a in args]


@pytest.mark.parametrize("doc,line", documented_commands())
def test_documented_command_parses(doc, line):
    command: click.Command = typer.main.get_command(app)
    args = concrete_args(line)
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        assert name in command.commands, f"{doc}: `{line}`: no command {name!r}"
        command = command.commands[name]
    try:
        command.make_context(command.name, list(args))
    except click.UsageError as exc:
        pytest.fail(f"{doc}: `{line}` does not parse: {exc.format_message()}")


def test_the_docs_show_commands_at_all():
    assert len(documented_commands()) >= 5

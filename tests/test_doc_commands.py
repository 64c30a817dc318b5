"""Every ``arith-rl`` command printed in README.md and docs/ parses with the current command line.

A command is an ``arith-rl`` line of a shell block, or an inline code span ``arith-rl COMMAND
...`` with at least one argument (a span with the command's name alone is a mention). Plug-in
files that exist are loaded first, as the command line does.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from agents.cli.registry import build_parser, plugin_paths
from agents.rl.registry import load_plugins

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_commands() -> list[tuple[str, str]]:
    """(page, command) for every command printed in the docs."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                match = re.search(r"(?:^|\s)(arith-rl\s.*)$", line.strip())
                if match:
                    found.append((page.name, match.group(1).split(" #")[0].strip()))
        for span in re.findall(r"`([^`\n]*\barith-rl [^`\n]*)`", text):
            command = span[span.index("arith-rl") :].strip()
            if len(command.split()) > 2:
                found.append((page.name, command))
    return found


COMMANDS = doc_commands()


def test_the_docs_print_commands():
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}: {c[:70]}" for p, c in COMMANDS])
def test_a_printed_command_parses(page, command, capsys):
    argv = shlex.split(command)[1:]
    load_plugins([path for path in plugin_paths(argv) if (ROOT / path).is_file()])
    try:
        build_parser(argv[0]).parse_args(argv)
    except SystemExit:
        error = capsys.readouterr().err.strip().splitlines()[-1]
        pytest.fail(f"{page}: `{command}` does not parse: {error}")

"""Every ``arith-rl`` command printed in README.md and docs/ parses with the current command line.

A command is an ``arith-rl`` line of a shell block, or an inline code span ``arith-rl COMMAND
...`` with at least one argument (a span with the command's name alone is a mention). Plug-in
files are loaded first, as the command line does; a command naming a plug-in that is not in the
repository (a file the docs show inline, the reader's own) is skipped.
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
        # fences paired in order, so a block in another language cannot shift the pairing
        blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
        for block in (body for language, body in blocks if language in ("", "bash", "sh", "console")):
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
    missing = [path for path in plugin_paths(argv) if not (ROOT / path).is_file()]
    if missing:  # the docs show such a file inline (docs/rl.md's my_methods.py): its names are unknown here
        pytest.skip(f"plug-in {missing[0]} is the reader's own file")
    load_plugins(plugin_paths(argv))
    try:
        build_parser(argv[0]).parse_args(argv)
    except SystemExit:
        error = capsys.readouterr().err.strip().splitlines()[-1]
        pytest.fail(f"{page}: `{command}` does not parse: {error}")

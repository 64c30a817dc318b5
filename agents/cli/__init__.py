"""``arith-rl``: the command line of arith-gym.

    arith-rl pretrain --digits 3 --size tiny --out runs/ref-n3
    arith-rl train --out runs/critical --method critical
    arith-rl compare --out runs/compare

Commands live in :mod:`~agents.cli.model_commands` and :mod:`~agents.cli.rl_commands`,
registered in :mod:`~agents.cli.registry`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agents import MissingExtra
from agents.cli import criticality_commands, model_commands, rl_commands  # noqa: F401  (they register the commands)
from agents.cli.registry import COMMANDS, build_parser, plugin_paths


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``arith-rl``; returns the exit code (2 with a one-line error for a bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    invoked = next((word for word in argv if not word.startswith("-")), None)
    try:
        # Plug-ins register their names before the parser takes its choices from the registries.
        # Imported only when there is one: agents.rl imports torch, and `arith-rl --help` should not.
        if plugins := plugin_paths(argv):
            from agents.rl.registry import load_plugins

            load_plugins(plugins)
    except ValueError as err:
        print(f"arith-rl {invoked}: error: {err}", file=sys.stderr)
        return 2
    args = build_parser(invoked if invoked in COMMANDS else None).parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, OSError, MissingExtra) as err:  # OSError: FileNotFoundError, an unwritable --out, ...
        print(f"arith-rl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as err:  # none of ours exits from inside a command: a plug-in's code did
        print(
            f"arith-rl {args.command}: error: sys.exit({err.code!r}) called during the run", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""The command registry of ``arith-rl`` and the helpers its commands share.

Each command is a pair of functions: one adds its arguments to its parser, one runs it. Only
the invoked command's arguments are built (they take their choices from the package's
registries, which import torch), so ``arith-rl --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each argument's default, unless it has none (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated function as the runner of command ``name``."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = Command(help, add_arguments, run)
        return run

    return register


def build_parser(only: str | None = "all") -> argparse.ArgumentParser:
    """The ``arith-rl`` parser, with the arguments of every command (``only="all"``), of one, or none."""
    parser = argparse.ArgumentParser(
        prog="arith-rl", description="arith-gym: RL fine-tuning of small LMs on scratchpad addition."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, spec in COMMANDS.items():
        command_parser = sub.add_parser(
            name,
            help=spec.help,
            description=spec.help,
            formatter_class=_HelpFormatter,
        )
        if only in ("all", name):
            spec.add_arguments(command_parser)
    return parser


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")


def parse_settings(pairs: Sequence[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` pairs as settings (values parsed as JSON, else kept as strings)."""
    settings: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            settings[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.replace("-", "_")] = value
    return settings


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def plugin_paths(argv: Sequence[str]) -> list[str]:
    """The files of every ``--plugin FILE`` (or ``--plugin=FILE``) in ``argv``, in order."""
    paths = []
    for i, word in enumerate(argv):
        if word == "--plugin" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif word.startswith("--plugin="):
            paths.append(word.partition("=")[2])
    return paths

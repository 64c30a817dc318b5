"""The command registry of ``arith-rl`` and the helpers its commands share.

Each command is a pair of functions: one adds its arguments to its parser, one runs it. Only
the invoked command's arguments are built (they take their choices from the package's
registries, which import torch), so ``arith-rl --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import math
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
        prog="arith-rl", description="arith-gym: RL fine-tuning of small LMs on scratchpad arithmetic tasks."
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


def number_list(text: str, flag: str, kind: type = int, minimum: float | None = None) -> list:
    """The comma-separated numbers of option ``flag`` (``int`` or ``float``), each at least ``minimum``.

    Raises:
        ValueError: one line naming ``flag`` and the bad item.
    """
    noun = "integers" if kind is int else "numbers"
    values = []
    for item in comma_list(text):
        try:
            value = kind(item)
        except ValueError:
            raise ValueError(f"{flag} takes comma-separated {noun}, got {item!r} in {text!r}") from None
        if (kind is float and not math.isfinite(value)) or (minimum is not None and value < minimum):
            bound = "finite" if minimum is None else f">= {minimum:g}"
            raise ValueError(f"{flag} takes {noun} {bound}, got {item!r}")
        values.append(value)
    if not values:
        raise ValueError(f"{flag} needs at least one value, got {text!r}")
    return values


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "integer >= 1"  # argparse's one-line error: "invalid integer >= 1 value: '0'"


def plugin_paths(argv: Sequence[str]) -> list[str]:
    """The files of every ``--plugin FILE`` (or ``--plugin=FILE``) in ``argv``, in order."""
    paths = []
    for i, word in enumerate(argv):
        if word == "--plugin" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif word.startswith("--plugin="):
            paths.append(word.partition("=")[2])
    return paths

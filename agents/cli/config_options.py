"""Command-line options made from a settings dataclass: one ``--field-name`` per field, typed from
its annotation, its help from the field's docstring, so a new setting is a new option with no
second list to keep in step.

``add_config_options(parser, RLConfig, exclude=("seed",))`` adds them (default: not given, so the
preset's value stays); :func:`config_overrides` returns the ones given. A bad value is argparse's
one-line usage error naming the option.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields
from functools import cache


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string literal right after it), whitespace folded."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(item) for item in text.split(",") if item.strip())


# argparse names the type in its one-line error: "argument --lr: invalid finite number value: 'abc'".
_finite_float.__name__ = "finite number"
_int_list.__name__ = "comma-separated integers"


def _parser_for(hint: object) -> tuple[Callable[[str], object] | None, bool]:
    """(the string parser of an annotation, whether it is a bool flag)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _parser_for(inner)
    if hint is bool:
        return None, True
    if typing.get_origin(hint) is tuple:
        return _int_list, False
    parsers: dict[object, Callable[[str], object]] = {int: int, float: _finite_float, str: str}
    return parsers[hint], False


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    choices: dict[str, Iterable[str]] | None = None,
    title: str = "settings",
    defaults: object | None = None,
) -> None:
    """Add ``--field-name`` for every field of dataclass ``cls`` but ``exclude`` (see the module).

    ``choices``: field -> allowed values (fixed sets, registered names); ``defaults``: an instance
    whose values the help shows (e.g. the default preset).
    """
    group = parser.add_argument_group(
        title, f"any {cls.__name__} setting; given, it beats the preset and --set"
    )
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    excluded = set(exclude)
    for field in fields(cls):
        if field.name in excluded:
            continue
        parse, flag = _parser_for(hints[field.name])
        help_text = docs.get(field.name) or field.name.replace("_", " ")
        shown = getattr(defaults, field.name) if defaults is not None else field.default
        if shown is not MISSING:
            help_text += f" [preset: {','.join(map(str, shown)) if isinstance(shown, tuple) else shown}]"
        kwargs: dict[str, object] = {
            "default": None,
            "help": help_text.replace("%", "%%"),
            "dest": field.name,
        }
        if flag:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = parse
            kwargs["metavar"] = field.name.upper()
            if choices and field.name in choices:
                kwargs["choices"] = list(choices[field.name])
                kwargs.pop("metavar")
        group.add_argument(option_name(field.name), **kwargs)


def config_overrides(args: argparse.Namespace, cls: type, exclude: Iterable[str] = ()) -> dict[str, object]:
    """The settings of ``cls`` given on the command line (options left out are not given)."""
    excluded = set(exclude)
    return {
        field.name: getattr(args, field.name)
        for field in fields(cls)
        if field.name not in excluded and getattr(args, field.name, None) is not None
    }

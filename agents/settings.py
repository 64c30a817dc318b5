"""Typed settings: frozen dataclasses whose fields are checked against their annotations.

:func:`check_field_types` runs in a settings class's ``__post_init__``: every field must hold
a value of its annotated type (``int``, ``float``, ``bool``, ``str``, ``tuple[int, ...]`` and
``X | None``), else a one-line ``ValueError`` names the field, the value and what it expects.
JSON's types map onto them without loss (an int where a float is expected becomes a float, a
list where a tuple is expected becomes a tuple); nothing else is converted, so ``"8"`` is not
an int and ``"maybe"`` is not a bool, and a float must be finite (``NaN``, ``Infinity`` are
refused). :func:`settings_from_mapping` builds one from a JSON object, naming its source in
every error.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Settings = TypeVar("Settings")


def _expected(hint: object) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return {int: "a list of integers", float: "a list of numbers"}.get(
            typing.get_args(hint)[0], str(hint)
        )
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(
        hint, str(hint)
    )


def _coerce(value: object, hint: object) -> tuple[bool, object]:
    """``(True, value as the annotated type)``, or ``(False, None)`` if it does not fit."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            fits, converted = _coerce(value, arg)
            if fits:
                return True, converted
        return False, None
    if hint is type(None):
        return value is None, None
    if hint is bool:
        return isinstance(value, (bool, np.bool_)), bool(value) if isinstance(
            value, (bool, np.bool_)
        ) else None
    if isinstance(value, (bool, np.bool_)):  # a bool is an int to Python, never to a setting
        return False, None
    if hint is int:
        return (True, int(value)) if isinstance(value, (int, np.integer)) else (False, None)
    if hint is float:  # NaN and inf are refused by name: a NaN coefficient used to end in a traceback
        number = isinstance(value, (int, float, np.integer, np.floating))
        return (True, float(value)) if number and math.isfinite(float(value)) else (False, None)
    if hint is str:
        return isinstance(value, str), value
    if origin is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(hint)[0]
        items = [_coerce(entry, item) for entry in value]
        return (True, tuple(v for _, v in items)) if all(ok for ok, _ in items) else (False, None)
    return False, None


def check_field_types(settings: object) -> None:
    """Check (and normalise, see the module docstring) every field of a frozen dataclass instance.

    Raises:
        ValueError: ``"<field> must be <expected>, got <value>"`` for the first field that does not fit.
    """
    hints = typing.get_type_hints(type(settings))
    for field in fields(settings):
        value = getattr(settings, field.name)
        fits, converted = _coerce(value, hints[field.name])
        if not fits:
            raise ValueError(f"{field.name} must be {_expected(hints[field.name])}, got {value!r}")
        if converted is not value:
            object.__setattr__(settings, field.name, converted)  # frozen: normalise in place


def settings_from_mapping(cls: type[Settings], values: object, source: str, base: Settings | None = None):
    """An instance of settings class ``cls`` from a JSON object, on top of ``base`` if given.

    Raises:
        ValueError: naming ``source``: not an object, unknown keys, or a bad value.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a JSON object of settings, got {type(values).__name__}")
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown settings {unknown}")
    try:
        if base is None:
            return cls(**values)
        return type(base)(**{**{f.name: getattr(base, f.name) for f in fields(base)}, **values})
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def read_json(path: str | Path) -> Any:
    """The JSON value in file ``path``, or a one-line ``ValueError`` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"settings file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None

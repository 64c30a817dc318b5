"""What each character of a target is for, and so what kind of mistake a first wrong token is.

Every character of the target (``docs/format.md``) gets one kind:

- ``critical``: a structural critical token (:func:`arith_gym.scratchpad.critical_mask`): the
  decision to continue an operand list past N digits or to close it;
- ``copy``: a character copied from earlier text: the operand lists ``L1``, ``L2`` and the
  list ``A`` with their brackets and commas, the carry ``C=`` and the addends ``n1+n2+C`` of
  the sum (a dropped, duplicated or wrong digit of a copy);
- ``carry``: a digit the line computes: the sum ``s``, ``A->`` (s mod 10) and ``C->`` (the
  carry out);
- ``result``: the result line after ``</scratch>``;
- ``format``: everything else (separators, ``A=``, ``END``, newlines, the scratch tags).

A failed episode's error kind is the kind of the target character at its first wrong token.
"""

from __future__ import annotations

import re

import numpy as np

from arith_gym.scratchpad import SCRATCH_CLOSE, SCRATCH_OPEN, critical_mask, target_text

ERROR_KINDS: tuple[str, ...] = ("critical", "copy", "carry", "result", "format")

_LIST = r"\[[0-9,]*\]"
_STEP_LINE = re.compile(
    rf"({_LIST}) \+ ({_LIST}) , A=({_LIST}) , C=([0-9]) , ([0-9])\+([0-9])\+([0-9])=([0-9]+) , "
    r"A->([0-9]) , C->([0-9])\n"
)
_STEP_KINDS = ("copy",) * 7 + ("carry",) * 3  # groups 1-7 are copies, 8-10 computed
_CLOSING_LINE = re.compile(rf"\[\] \+ \[\] , A=({_LIST}) C=([0-9]) , END\n")


def position_kinds(a: int, b: int, comfort_digits: int) -> np.ndarray:
    """The kind (one of :data:`ERROR_KINDS`) of every character of the target of ``a + b``."""
    target = target_text(a, b)
    kinds = np.full(len(target), "format", dtype=object)
    scratch_end = target.index(SCRATCH_CLOSE)
    kinds[scratch_end + len(SCRATCH_CLOSE) : -1] = "result"  # the result digits and spaces
    start = len(SCRATCH_OPEN)
    while start < scratch_end:
        end = target.index("\n", start) + 1
        line = target[start:end]
        step = _STEP_LINE.fullmatch(line)
        match, group_kinds = (
            (step, _STEP_KINDS) if step else (_CLOSING_LINE.fullmatch(line), ("copy", "copy"))
        )
        for group, kind in enumerate(group_kinds, start=1):
            kinds[start + match.start(group) : start + match.end(group)] = kind
        start = end
    kinds[critical_mask(a, b, comfort_digits, len(target))] = "critical"
    return kinds


def first_error(a: int, b: int, text: str) -> int | None:
    """Index of the first character of ``text`` that departs from the target (None: no departure)."""
    target = target_text(a, b)
    for i, (got, want) in enumerate(zip(text, target, strict=False)):
        if got != want:
            return i
    return None if len(text) == len(target) else min(len(text), len(target) - 1)


def error_kind(a: int, b: int, comfort_digits: int, text: str) -> str | None:
    """The kind of the target character at ``text``'s first wrong token (None: ``text`` is right)."""
    index = first_error(a, b, text)
    return None if index is None else str(position_kinds(a, b, comfort_digits)[index])

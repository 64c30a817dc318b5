"""The exact text of the addition task: prompt, scratchpad target, result and critical tokens.

This module is the contract of ``docs/format.md``: the environment, the
pre-training data and the analysis all build their text here, so they agree to the
character. Operands are non-negative Python integers of any size.

:func:`target_and_critical` is the one implementation of the target text and its critical
tokens (one pass, unchecked, for the environments' resets); :func:`target_text` and
:func:`critical_tokens` check their arguments and call it.
"""

from __future__ import annotations

import numbers
import re
import sys
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

SCRATCH_OPEN = "<scratch>\n"
SCRATCH_CLOSE = "</scratch>\n"
_RESULT_LINE = re.compile(r"[0-9 ]+")

CRITICAL_KINDS: tuple[str, ...] = ("comma", "digit")
"""Kind codes of a :data:`CriticalRecord`: ``CRITICAL_KINDS[code]`` is the CriticalToken kind."""
CRITICAL_KIND_CODES: dict[str, int] = {kind: code for code, kind in enumerate(CRITICAL_KINDS)}
_COMMA, _DIGIT = CRITICAL_KIND_CODES["comma"], CRITICAL_KIND_CODES["digit"]

CriticalRecord: TypeAlias = tuple[int, int, int, int, int]
"""A critical token as a plain tuple ``(position, line, operand, index, kind code)``."""


@dataclass(frozen=True)
class CriticalToken:
    """One structural critical token of a target text.

    Attributes:
        position: index of the character in the target text.
        line: 1-based scratchpad line (1 = the first line after ``<scratch>``).
        operand: 1 for the left operand's list, 2 for the right one's.
        index: how many digits past the comfort zone this token belongs to (1..m-N).
        kind: ``"comma"`` for the comma before digit N+index, ``"digit"`` for that digit.
    """

    position: int
    line: int
    operand: int
    index: int
    kind: Literal["comma", "digit"]

    @classmethod
    def from_record(cls, record: CriticalRecord) -> CriticalToken:
        """The token of a :data:`CriticalRecord` from :func:`target_and_critical`."""
        position, line, operand, index, kind = record
        return cls(position, line, operand, index, CRITICAL_KINDS[kind])


MAX_OPERAND_DIGITS = 256
"""The longest operand the task takes. A scratchpad grows with the square of the operand length:
at 256 digits a target is about 260,000 characters (an env's observation about 2 MB); at 3,000 a
single env took 1.4 GB, and beyond 4,300 digits Python refuses to print the number at all."""
_OPERAND_LIMIT = 10**MAX_OPERAND_DIGITS


def check_operand(value: object, name: str = "operand") -> int:
    """Return ``value`` if it is a non-negative integer of at most :data:`MAX_OPERAND_DIGITS`
    digits, else raise ``ValueError`` naming it."""
    # bool is an Integral too, but True+False is not an addition problem anyone means.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    if value >= _OPERAND_LIMIT:
        raise ValueError(f"{name} has more than {MAX_OPERAND_DIGITS} digits (the task's maximum)")
    return value


def prompt_text(a: int, b: int) -> str:
    """The prompt ``Input:\\n{a}+{b}\\nTarget:\\n``."""
    a, b = check_operand(a, "a"), check_operand(b, "b")
    return f"Input:\n{a}+{b}\nTarget:\n"


def target_and_critical(a: int, b: int, comfort_digits: int) -> tuple[str, list[CriticalRecord]]:
    """``target_text(a, b)`` and ``critical_tokens(a, b, comfort_digits)`` as records, in one pass.

    The implementation of both: the text is built from string slices line by line and the
    critical tokens are found while it is laid out, so an environment's reset runs one
    cheap call. No argument checks, for hot paths: ``a`` and ``b`` must be non-negative
    ints and ``comfort_digits`` a positive int (the public functions check them). The
    records are :data:`CriticalRecord` tuples in order of position
    (:meth:`CriticalToken.from_record` turns one into a :class:`CriticalToken`).
    """
    sa, sb = str(a), str(b)
    # Digit k of "d1,d2,...,dm" is at 2k-2, so the first k digits' list text is joined[: 2k-1].
    joined_a, joined_b = ",".join(sa), ",".join(sb)
    length_a, length_b = len(sa), len(sb)
    lines = max(length_a, length_b)
    answer = a + b
    # The digits produced after k lines are the answer's last k digits.
    produced = ",".join(str(answer % 10**lines).zfill(lines))
    parts = [SCRATCH_OPEN]
    records: list[CriticalRecord] = []
    start, carry = len(SCRATCH_OPEN), 0
    for k in range(lines):
        left, right = max(length_a - k, 0), max(length_b - k, 0)
        n1 = ord(sa[left - 1]) - 48 if left else 0
        n2 = ord(sb[right - 1]) - 48 if right else 0
        left_text = joined_a[: 2 * left - 1] if left else ""
        right_text = joined_b[: 2 * right - 1] if right else ""
        total = n1 + n2 + carry
        line = (
            f"[{left_text}] + [{right_text}] , A=[{produced[2 * (lines - k) :]}] , C={carry} , "
            f"{n1}+{n2}+{carry}={total} , A->{total % 10} , C->{total // 10}\n"
        )
        if left > comfort_digits or right > comfort_digits:
            # Digit j (1-based) of a list sits 2j-1 after its "[", its comma just before it;
            # the right list's "[" follows "[{left_text}] + ".
            for operand, bracket, length in ((1, 0, left), (2, len(left_text) + 5, right)):
                for index in range(1, length - comfort_digits + 1):
                    digit = start + bracket + 2 * (comfort_digits + index) - 1
                    records.append((digit - 1, k + 1, operand, index, _COMMA))
                    records.append((digit, k + 1, operand, index, _DIGIT))
        parts.append(line)
        start += len(line)
        carry = total // 10
    parts.append(f"[] + [] , A=[{produced}] C={carry} , END\n{SCRATCH_CLOSE}{' '.join(str(answer))}\n")
    return "".join(parts), records


_NO_CRITICAL = sys.maxsize  # a comfort zone longer than any operand: no critical tokens


def target_text(a: int, b: int) -> str:
    """The scratchpad and result line that a model must generate for ``a+b``."""
    a, b = check_operand(a, "a"), check_operand(b, "b")
    return target_and_critical(a, b, _NO_CRITICAL)[0]


def parse_result(text: str) -> int | None:
    """The result that ``text`` states, or None if it states none.

    The result line is the first complete line after the first ``</scratch>\\n``: it
    counts once its newline is written. Its digits, spaces removed, must form a number
    written without leading zeros; anything else (letters, an empty line, ``0 7``)
    states no result.
    """
    start = text.find(SCRATCH_CLOSE)
    if start < 0:
        return None
    rest = text[start + len(SCRATCH_CLOSE) :]
    end = rest.find("\n")
    if end < 0:
        return None
    line = rest[:end]
    if not _RESULT_LINE.fullmatch(line):
        return None
    digits = line.replace(" ", "")
    if not digits or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


def critical_tokens(a: int, b: int, comfort_digits: int) -> list[CriticalToken]:
    """The structural critical tokens of ``target_text(a, b)`` for a comfort zone of N digits.

    In every scratchpad line, for every operand list holding m > N digits, the tokens
    after its N-th digit (comma before digit N+1, digit N+1, ..., comma before digit m,
    digit m) are critical. Returned in order of position.
    """
    a, b = check_operand(a, "a"), check_operand(b, "b")
    comfort_digits = check_operand(comfort_digits, "comfort_digits")
    if comfort_digits < 1:
        raise ValueError(f"comfort_digits must be at least 1, got {comfort_digits}")
    return [CriticalToken.from_record(record) for record in target_and_critical(a, b, comfort_digits)[1]]


def critical_mask(a: int, b: int, comfort_digits: int, length: int | None = None) -> np.ndarray:
    """Boolean mask over the first ``length`` (default: all) positions of ``target_text(a, b)``,
    True at its structural critical tokens for a comfort zone of ``comfort_digits`` digits."""
    length = len(target_text(a, b)) if length is None else length
    mask = np.zeros(length, dtype=bool)
    mask[[t.position for t in critical_tokens(a, b, comfort_digits) if t.position < length]] = True
    return mask

"""The exact text of the addition task: prompt, scratchpad target, result and critical tokens.

This module is the contract of ``shared/spec/scratchpad.md``: the environment, the
pre-training data and the analysis all build their text here, so they agree to the
character. Operands are non-negative Python integers of any size.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Literal

SCRATCH_OPEN = "<scratch>\n"
SCRATCH_CLOSE = "</scratch>\n"
_RESULT_LINE = re.compile(r"[0-9 ]+")


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


def check_operand(value: object, name: str = "operand") -> int:
    """Return ``value`` if it is a non-negative integer, else raise ``ValueError``."""
    # bool is an Integral too, but True+False is not an addition problem anyone means.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


def prompt_text(a: int, b: int) -> str:
    """The prompt ``Input:\\n{a}+{b}\\nTarget:\\n``."""
    a, b = check_operand(a, "a"), check_operand(b, "b")
    return f"Input:\n{a}+{b}\nTarget:\n"


def _digits(value: int) -> list[int]:
    return [int(ch) for ch in str(value)]


def _list_text(digits: list[int]) -> str:
    return "[" + ",".join(map(str, digits)) + "]"


def _scratch_lines(a: int, b: int) -> tuple[list[str], list[int], int]:
    """The scratchpad's digit lines, the result digits (least significant first), final carry."""
    left, right = _digits(a), _digits(b)
    produced: list[int] = []
    carry = 0
    lines = []
    while left or right:
        n1 = left[-1] if left else 0
        n2 = right[-1] if right else 0
        total = n1 + n2 + carry
        lines.append(
            f"{_list_text(left)} + {_list_text(right)} , A={_list_text(produced[::-1])} , "
            f"C={carry} , {n1}+{n2}+{carry}={total} , A->{total % 10} , C->{total // 10}\n"
        )
        produced.append(total % 10)
        carry = total // 10
        left, right = left[:-1], right[:-1]
    return lines, produced, carry


def target_text(a: int, b: int) -> str:
    """The scratchpad and result line that a model must generate for ``a+b``."""
    a, b = check_operand(a, "a"), check_operand(b, "b")
    lines, produced, carry = _scratch_lines(a, b)
    closing = f"[] + [] , A={_list_text(produced[::-1])} C={carry} , END\n"
    result_digits = ([carry] if carry else []) + produced[::-1]
    result_line = " ".join(map(str, result_digits)) + "\n"
    return SCRATCH_OPEN + "".join(lines) + closing + SCRATCH_CLOSE + result_line


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
    lines, _, _ = _scratch_lines(a, b)
    records: list[CriticalToken] = []
    line_start = len(SCRATCH_OPEN)
    left_len, right_len = len(str(a)), len(str(b))
    for line_number, line in enumerate(lines, start=1):
        right_bracket = line.index(" + [") + len(" + ")
        for operand, bracket, length in ((1, 0, left_len), (2, right_bracket, right_len)):
            # Digit k (1-based) of a list "[d1,d2,...]" sits at offset 2k-1, its comma at 2k-2.
            for index in range(1, length - comfort_digits + 1):
                digit_offset = bracket + 2 * (comfort_digits + index) - 1
                for kind, offset in (("comma", digit_offset - 1), ("digit", digit_offset)):
                    records.append(CriticalToken(line_start + offset, line_number, operand, index, kind))
        left_len, right_len = max(left_len - 1, 0), max(right_len - 1, 0)
        line_start += len(line)
    return records

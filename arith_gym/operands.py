"""Seeded samplers for the operand distributions of the spec.

``comfort``: each operand's digit count uniform in 1..N, then the operand uniform among
numbers with that many digits (1-digit numbers include 0).
``plus{k}``: one operand, on a side chosen uniformly, has exactly N+k digits; the other
has, with probability 1/2, a digit count uniform in 1..N, otherwise uniform in N+1..N+k.

Every draw comes from the ``numpy.random.Generator`` passed in, so a seed fixes the problems.
Operands are Python ints, digit by digit, so any size works.
"""

from __future__ import annotations

import re

import numpy as np

_SPLIT = re.compile(r"comfort|plus([1-9][0-9]*)")


def split_offset(split: str) -> int:
    """k for ``plus{k}``, 0 for ``comfort``; a clear error for anything else."""
    match = _SPLIT.fullmatch(split) if isinstance(split, str) else None
    if match is None:
        raise ValueError(f"split must be 'comfort' or 'plus{{k}}' with k >= 1 (e.g. 'plus1'), got {split!r}")
    return int(match.group(1)) if match.group(1) else 0


def max_digits(split: str, comfort_digits: int) -> int:
    """The largest operand digit count that ``split`` can draw."""
    return comfort_digits + split_offset(split)


def sample_number(rng: np.random.Generator, digits: int) -> int:
    """A number drawn uniformly among those with exactly ``digits`` digits (0 counts as 1 digit)."""
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    if digits == 1:
        return int(rng.integers(0, 10))
    leading = int(rng.integers(1, 10))
    rest = rng.integers(0, 10, size=digits - 1)
    return int(str(leading) + "".join(map(str, rest.tolist())))


def sample_digit_counts(rng: np.random.Generator, split: str, comfort_digits: int) -> tuple[int, int]:
    """The digit counts of the two operands of one problem of ``split``."""
    if (
        isinstance(comfort_digits, bool)
        or not isinstance(comfort_digits, (int, np.integer))
        or comfort_digits < 1
    ):
        raise ValueError(f"comfort_digits must be a positive integer, got {comfort_digits!r}")
    offset = split_offset(split)
    if offset == 0:
        return int(rng.integers(1, comfort_digits + 1)), int(rng.integers(1, comfort_digits + 1))
    long_side = int(rng.integers(0, 2))
    long_digits = comfort_digits + offset
    if rng.random() < 0.5:
        other = int(rng.integers(1, comfort_digits + 1))
    else:
        other = int(rng.integers(comfort_digits + 1, long_digits + 1))
    return (long_digits, other) if long_side == 0 else (other, long_digits)


def sample_operands(rng: np.random.Generator, split: str, comfort_digits: int) -> tuple[int, int]:
    """One problem ``(a, b)`` of ``split`` for a comfort zone of ``comfort_digits`` digits."""
    digits_a, digits_b = sample_digit_counts(rng, split, comfort_digits)
    return sample_number(rng, digits_a), sample_number(rng, digits_b)

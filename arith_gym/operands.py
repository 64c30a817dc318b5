"""Seeded samplers for the operand distributions of the spec.

``comfort``: each operand's digit count uniform in 1..N, then the operand uniform among
numbers with that many digits (1-digit numbers include 0).
``plus{k}``: one operand, on a side chosen uniformly, has exactly N+k digits; the other
has, with probability 1/2, a digit count uniform in 1..N, otherwise uniform in N+1..N+k.

Every draw comes from the ``numpy.random.Generator`` passed in, so a seed fixes the problems.
Operands are Python ints, digit by digit, so any size works.

:func:`draw_operands` is the one implementation of the draw (unchecked, for hot paths such
as the environments' resets); :func:`sample_operands`, :func:`sample_digit_counts` and
:func:`sample_number` check their arguments and use the same code, so every caller gets
the same problems for the same generator state.

**Held-out problems.** :func:`is_heldout` puts a fixed 1/16 of all problems aside by a hash of
``(a, b)``: evaluation sets draw only from them (``problem_set="heldout"``) and RL training
never does (``problem_set="train"``), so no problem trained on is ever evaluated on.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from arith_gym.scratchpad import MAX_OPERAND_DIGITS

_SPLIT = re.compile(r"comfort|plus([1-9][0-9]*)")


def split_offset(split: str) -> int:
    """k for ``plus{k}``, 0 for ``comfort``; a clear error for anything else."""
    match = _SPLIT.fullmatch(split) if isinstance(split, str) else None
    if match is None:
        raise ValueError(f"split must be 'comfort' or 'plus{{k}}' with k >= 1 (e.g. 'plus1'), got {split!r}")
    return int(match.group(1)) if match.group(1) else 0


def max_digits(split: str, comfort_digits: int) -> int:
    """The largest operand digit count that ``split`` can draw.

    Raises:
        ValueError: naming ``comfort_digits`` and ``split`` when it exceeds
            :data:`~arith_gym.scratchpad.MAX_OPERAND_DIGITS`.
    """
    longest = comfort_digits + split_offset(split)
    if longest > MAX_OPERAND_DIGITS:
        raise ValueError(
            f"comfort_digits={comfort_digits} with split={split!r} draws operands of {longest} digits; "
            f"the task's maximum is {MAX_OPERAND_DIGITS}"
        )
    return longest


def _check_comfort_digits(comfort_digits: object) -> int:
    if (
        isinstance(comfort_digits, bool)
        or not isinstance(comfort_digits, (int, np.integer))
        or comfort_digits < 1
    ):
        raise ValueError(f"comfort_digits must be a positive integer, got {comfort_digits!r}")
    if comfort_digits > MAX_OPERAND_DIGITS:
        raise ValueError(f"comfort_digits must be at most {MAX_OPERAND_DIGITS}, got {comfort_digits}")
    return int(comfort_digits)


# Up to this many digits a number's digits after the leading one are drawn one scalar
# ``integers(0, 10)`` call each, beyond it in one ``size=`` call: both give the same values
# (the generator serves an array draw one 32-bit word per element, exactly as the scalar
# calls do; the tests check it), and a scalar call costs about a quarter of an array call.
_DIGIT_BY_DIGIT_MAX = 5


def _draw_number(rng: np.random.Generator, digits: int) -> int:
    """A uniform ``digits``-digit number (``digits >= 1``, not checked)."""
    integers = rng.integers
    if digits == 1:
        return int(integers(0, 10))
    value = int(integers(1, 10))
    if digits <= _DIGIT_BY_DIGIT_MAX:
        for _ in range(digits - 1):
            value = value * 10 + int(integers(0, 10))
        return value
    rest = integers(0, 10, size=digits - 1)
    return int(str(value) + "".join(map(str, rest.tolist())))


def _draw_digit_counts(rng: np.random.Generator, offset: int, comfort_digits: int) -> tuple[int, int]:
    """The operands' digit counts for split offset k = ``offset`` (arguments not checked)."""
    integers = rng.integers
    if offset == 0:
        return int(integers(1, comfort_digits + 1)), int(integers(1, comfort_digits + 1))
    long_side = int(integers(0, 2))
    long_digits = comfort_digits + offset
    if rng.random() < 0.5:
        other = int(integers(1, comfort_digits + 1))
    else:
        other = int(integers(comfort_digits + 1, long_digits + 1))
    return (long_digits, other) if long_side == 0 else (other, long_digits)


PROBLEM_SETS: tuple[str, ...] = ("all", "train", "heldout")
"""Which problems a draw may return: all of them, those not held out, or only held-out ones."""
HELDOUT_BUCKETS = 16
"""One problem in this many is held out (:func:`is_heldout`)."""


def is_heldout(a: int, b: int) -> bool:
    """Whether problem ``a + b`` is held out for evaluation: 1 in 16 of all problems, by a hash
    of the pair (stable across processes and versions, unrelated to the digits' values)."""
    digest = hashlib.blake2b(f"{a}+{b}".encode("ascii"), digest_size=2).digest()
    return int.from_bytes(digest, "little") % HELDOUT_BUCKETS == 0


def in_problem_set(a: int, b: int, problem_set: str) -> bool:
    """Whether ``(a, b)`` belongs to ``problem_set`` (one of :data:`PROBLEM_SETS`, not checked)."""
    return problem_set == "all" or is_heldout(a, b) == (problem_set == "heldout")


def draw_operands(
    rng: np.random.Generator, offset: int, comfort_digits: int, problem_set: str = "all"
) -> tuple[int, int]:
    """One problem ``(a, b)`` for split offset ``offset`` (k of ``plus{k}``, 0 for ``comfort``).

    No argument checks, for hot paths (an environment's reset) that checked the split and
    ``comfort_digits`` once: ``offset`` must be ``split_offset(split)`` and ``comfort_digits``
    a positive int. :func:`sample_operands` is the checked entry point and draws the same.
    ``problem_set`` ``train`` / ``heldout`` draws again until the problem is (not) held out:
    the split's distribution restricted to that part.
    """
    while True:
        digits_a, digits_b = _draw_digit_counts(rng, offset, comfort_digits)
        a, b = _draw_number(rng, digits_a), _draw_number(rng, digits_b)
        if problem_set == "all" or in_problem_set(a, b, problem_set):
            return a, b


def check_problem_set(problem_set: object) -> str:
    """``problem_set`` if it is one of :data:`PROBLEM_SETS`, else a ``ValueError`` naming it."""
    if problem_set not in PROBLEM_SETS:
        raise ValueError(f"problem_set must be one of {PROBLEM_SETS}, got {problem_set!r}")
    return str(problem_set)


def sample_number(rng: np.random.Generator, digits: int) -> int:
    """A number drawn uniformly among those with exactly ``digits`` digits (0 counts as 1 digit)."""
    if not 1 <= digits <= MAX_OPERAND_DIGITS:
        raise ValueError(f"digits must be in 1..{MAX_OPERAND_DIGITS}, got {digits}")
    return _draw_number(rng, digits)


def sample_digit_counts(rng: np.random.Generator, split: str, comfort_digits: int) -> tuple[int, int]:
    """The digit counts of the two operands of one problem of ``split``."""
    comfort_digits = _check_comfort_digits(comfort_digits)
    max_digits(split, comfort_digits)  # checks the split and the longest operand
    return _draw_digit_counts(rng, split_offset(split), comfort_digits)


def sample_operands(
    rng: np.random.Generator, split: str, comfort_digits: int, problem_set: str = "all"
) -> tuple[int, int]:
    """One problem ``(a, b)`` of ``split`` for a comfort zone of ``comfort_digits`` digits
    (only from ``problem_set``, see :func:`draw_operands`).

    Checks its arguments, then draws with :func:`draw_operands`.
    """
    comfort_digits = _check_comfort_digits(comfort_digits)
    max_digits(split, comfort_digits)  # checks the split and the longest operand
    return draw_operands(rng, split_offset(split), comfort_digits, check_problem_set(problem_set))


# --------------------------------------------------------------------------- problem sets


LENGTH_KINDS: tuple[str, ...] = ("identical", "varying")
"""How :func:`problems_with_digits` draws the shorter operand (the paper's Tables 4 and 5)."""


def problems_with_digits(
    rng: np.random.Generator, digits: int, kind: str, count: int
) -> list[tuple[int, int]]:
    """``count`` problems whose longest operand has ``digits`` digits.

    ``identical``: both operands have ``digits`` digits; ``varying``: one operand (side drawn
    uniformly) has ``digits`` digits, the other a digit count uniform in 1..``digits``.
    """
    if kind not in LENGTH_KINDS:
        raise ValueError(f"kind must be one of {LENGTH_KINDS}, got {kind!r}")
    problems = []
    for _ in range(count):
        if kind == "identical":
            problems.append((sample_number(rng, digits), sample_number(rng, digits)))
            continue
        other = sample_number(rng, int(rng.integers(1, digits + 1)))
        longest = sample_number(rng, digits)
        problems.append((longest, other) if rng.random() < 0.5 else (other, longest))
    return problems


def split_for(digits: int, comfort_digits: int) -> str:
    """The smallest split whose problems can be ``digits`` digits long (it sizes an env's context)."""
    return "comfort" if digits <= comfort_digits else f"plus{digits - comfort_digits}"


def split_problems(
    split: str, comfort_digits: int, count: int, seed: int, problem_set: str = "all"
) -> list[tuple[int, int]]:
    """``count`` problems of ``split`` (from ``problem_set``) drawn with ``seed``: the same at every call."""
    rng = np.random.default_rng(seed)
    return [sample_operands(rng, split, comfort_digits, problem_set) for _ in range(count)]

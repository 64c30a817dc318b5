"""Multiplication by one digit, ``a*d`` (``docs/tasks.md``): N = the digits of ``a`` in pre-training.

One scratchpad line per digit of ``a``, right to left, with the carry; after the last digit the
closing line ``C={carry} , END``. No list is copied: the model reads the digits from the prompt,
and its one decision is whether to write another line or close. A model pre-trained on ``a`` of
at most N digits is tempted to close after N lines, so the first token of every line past the
N-th (the next digit, against the ``C`` of the closing line) is a structural critical token.
"""

from __future__ import annotations

import numpy as np

from arith_gym import operands
from arith_gym.scratchpad import SCRATCH_CLOSE, SCRATCH_OPEN, CriticalRecord
from arith_gym.task import ProblemKey, check_int_tuple, in_problem_set
from arith_gym.tokenizer import TOKEN_TO_ID

DIGITS = (2, 9)
"""The multiplier ``d`` is uniform in 2..9 (1 would copy ``a``, 0 would erase it)."""


class MultiplyTask:
    """``a*d``: comfort ``a`` of 1..N digits (uniform count, then uniform number); ``plus{k}``: ``a``
    of exactly N+k digits; ``d`` uniform in 2..9."""

    name = "Multiply"
    vocab_size = TOKEN_TO_ID["*"] + 1
    critical_kinds = ("line",)

    def sample(
        self, rng: np.random.Generator, split: str, comfort_digits: int, problem_set: str
    ) -> ProblemKey:
        offset = operands.split_offset(split)
        while True:
            digits = comfort_digits + offset if offset else int(rng.integers(1, comfort_digits + 1))
            problem = (operands.sample_number(rng, digits), int(rng.integers(DIGITS[0], DIGITS[1] + 1)))
            if in_problem_set(self, problem, problem_set):
                return problem

    def check(self, problem: object) -> ProblemKey:
        a, d = check_int_tuple(problem, "problem (a, d)", 2)
        if d > 9:
            raise ValueError(f"the multiplier must be one digit, got {d}")
        return a, d

    def key(self, problem: ProblemKey) -> str:
        return f"{problem[0]}*{problem[1]}"

    def prompt(self, problem: ProblemKey) -> str:
        return f"Input:\n{problem[0]}*{problem[1]}\nTarget:\n"

    def target(self, problem: ProblemKey, comfort_digits: int) -> tuple[str, list[CriticalRecord]]:
        a, d = problem
        parts, records, position, carry = [SCRATCH_OPEN], [], len(SCRATCH_OPEN), 0
        for line, digit in enumerate(reversed(str(a)), start=1):
            total = int(digit) * d + carry
            if line > comfort_digits:  # another line, where a model of N digits would close
                records.append((position, line, 1, line - comfort_digits, 0))
            text = f"{digit}*{d}+{carry}={total} , A->{total % 10} , C->{total // 10}\n"
            parts.append(text)
            position += len(text)
            carry = total // 10
        parts.append(f"C={carry} , END\n{SCRATCH_CLOSE}{' '.join(str(a * d))}\n")
        return "".join(parts), records

    def answer(self, problem: ProblemKey) -> int:
        return problem[0] * problem[1]

    def longest(self, split: str, comfort_digits: int) -> ProblemKey:
        return 10 ** operands.max_digits(split, comfort_digits) - 1, 9

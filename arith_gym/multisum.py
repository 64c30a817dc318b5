"""A sum of K zero-padded operands, ``o1+o2+...+oK`` (``docs/tasks.md``): N = the most operands seen
in pre-training.

One scratchpad line per column, right to left: the column's K digits, the carry in, their sum and
the carry out, which grows past anything seen in pre-training as K grows (K nines and a carry).
A model pre-trained on at most N operands is tempted to stop adding after the N-th digit of a
column, so the ``+`` that continues a column past its N-th addend is a structural critical token,
on every column line.
"""

from __future__ import annotations

import numpy as np

from arith_gym import operands
from arith_gym.scratchpad import SCRATCH_CLOSE, SCRATCH_OPEN, CriticalRecord
from arith_gym.task import ProblemKey, check_int_tuple, in_problem_set
from arith_gym.tokenizer import VOCAB_SIZE

WIDTH = 3
"""Operands have 1..3 digits (the width of the widest, the others zero-padded to it)."""


class MultiSumTask:
    """``o1+...+oK``: comfort K uniform in 2..N; ``plus{k}``: K = N+k; the width uniform in
    1..:data:`WIDTH`, then every operand uniform below ``10**width``. N must be at least 2."""

    name = "MultiSum"
    vocab_size = VOCAB_SIZE
    critical_kinds = ("plus",)

    def sample(
        self, rng: np.random.Generator, split: str, comfort_digits: int, problem_set: str
    ) -> ProblemKey:
        if comfort_digits < 2:
            raise ValueError(f"MultiSum needs comfort_digits (most operands) >= 2, got {comfort_digits}")
        offset = operands.split_offset(split)
        while True:
            count = comfort_digits + offset if offset else int(rng.integers(2, comfort_digits + 1))
            width = int(rng.integers(1, WIDTH + 1))
            problem = tuple(int(value) for value in rng.integers(0, 10**width, size=count))
            if in_problem_set(self, problem, problem_set):
                return problem

    def check(self, problem: object) -> ProblemKey:
        values = check_int_tuple(problem, "problem (operands)")
        if len(values) < 2 or max(values) >= 10**WIDTH:
            raise ValueError(f"a MultiSum problem is 2 or more operands below {10**WIDTH}, got {problem!r}")
        return values

    def key(self, problem: ProblemKey) -> str:
        return "+".join(map(str, problem))

    @staticmethod
    def width(problem: ProblemKey) -> int:
        return len(str(max(problem)))

    def prompt(self, problem: ProblemKey) -> str:
        width = self.width(problem)
        return "Input:\n" + "+".join(str(value).zfill(width) for value in problem) + "\nTarget:\n"

    def target(self, problem: ProblemKey, comfort_digits: int) -> tuple[str, list[CriticalRecord]]:
        width = self.width(problem)
        padded = [str(value).zfill(width) for value in problem]
        parts, records, position, carry = [SCRATCH_OPEN], [], len(SCRATCH_OPEN), 0
        for line, column in enumerate(range(width - 1, -1, -1), start=1):
            digits = [int(number[column]) for number in padded]
            total = sum(digits) + carry
            # Addend j (1-based) sits at 2(j-1); the "+" that continues past addend N is just before N+1.
            for index in range(1, len(digits) - comfort_digits + 1):
                records.append(
                    (position + 2 * (comfort_digits + index - 1) - 1, line, comfort_digits + index, index, 0)
                )
            text = f"{'+'.join(map(str, digits))} , +{carry}={total} , A->{total % 10} , C->{total // 10}\n"
            parts.append(text)
            position += len(text)
            carry = total // 10
        parts.append(f"C={carry} , END\n{SCRATCH_CLOSE}{' '.join(str(sum(problem)))}\n")
        return "".join(parts), records

    def answer(self, problem: ProblemKey) -> int:
        return sum(problem)

    def longest(self, split: str, comfort_digits: int) -> ProblemKey:
        return (10**WIDTH - 1,) * (comfort_digits + operands.split_offset(split))

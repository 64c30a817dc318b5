"""What the reference does at each kind of structural critical token, case by case.

The prioritized KL frees a critical token only where the reference is *unsure* (J^β small).
This script shows, for teacher-forced N+1-digit targets, the reference's probability of the
right token and the KL weight J^β at each structural critical token, grouped by kind
(comma or digit), by which operand holds the long list, and by the other operand's digit
count: a token where the reference is confidently wrong keeps a full KL weight.

    python examples/reference_at_critical.py --problems 1000
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from agents.evaluation.teacher_forcing import target_token_probs
from agents.lm.model import DEFAULT_REFERENCE, load_reference
from arith_gym.operands import split_problems
from arith_gym.scratchpad import critical_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default=str(DEFAULT_REFERENCE))
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--split", default="plus1")
    parser.add_argument("--beta", type=float, default=150.0)
    parser.add_argument("--certainty-temperature", type=float, default=1.0, help="the cpu preset's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, task = load_reference(args.ref)
    problems = split_problems(args.split, task.comfort_digits, args.problems, args.seed)
    forced = target_token_probs(
        model, problems, task.comfort_digits, certainty_temperature=args.certainty_temperature
    )
    cases: dict[tuple[str, int, int], list[tuple[float, float]]] = defaultdict(list)
    for (a, b), row in zip(problems, forced, strict=True):
        p_right, weight = row.probs, row.certainty**args.beta
        for token in critical_tokens(a, b, task.comfort_digits):
            other_digits = len(str(b if token.operand == 1 else a))
            cases[(token.kind, token.operand, other_digits)].append(
                (float(p_right[token.position]), float(weight[token.position]))
            )
    print(
        f"{args.ref}: N={task.comfort_digits}, {len(problems)} {args.split} targets,"
        f" KL weight J^{args.beta:g} with J at T={args.certainty_temperature:g}\n"
    )
    columns = ("kind", "long operand", "other operand's digits", "tokens", "mean p(right)")
    columns += ("p(right) < 0.01", "p(right) > 0.99", "mean KL weight")
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for (kind, operand, other_digits), values in sorted(cases.items()):
        p_right, weight = np.array(values).T
        print(
            f"| {kind} | {operand} | {other_digits} | {len(values)} | {p_right.mean():.2f}"
            f" | {(p_right < 0.01).mean():.2f} | {(p_right > 0.99).mean():.2f} | {weight.mean():.2f} |"
        )


if __name__ == "__main__":
    main()

"""Can a certainty test alone single out the structural critical tokens?

The data-driven finder of ``arith-rl analyze`` flags a position when a forced mistake there
loses the answer *and* the reference's certainty J there is far below its certainty
elsewhere. On this task a mistake is fatal almost everywhere, so the certainty test does the
separating. This script scores that test on its own, for several temperatures of J and
several ways of saying "far below" (per episode: standard deviations below the mean of the
other positions, robust z-scores from median and MAD, or the lowest fraction by rank),
with precision and recall against the structural critical tokens, the commas and the
digits apart.

J at a position depends only on the text before it, so teacher forcing the right texts of
fresh N+1-digit problems gives the J of correct episodes (``agents.evaluation.teacher_forcing``):

    python examples/certainty_criteria.py --problems 200
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from agents.evaluation.finder import low_certainty, precision_recall
from agents.evaluation.teacher_forcing import target_token_probs
from agents.lm.model import DEFAULT_REFERENCE, load_reference
from arith_gym.operands import split_problems
from arith_gym.scratchpad import target_text

Criterion = Callable[[np.ndarray, float], np.ndarray]


def robust_low(j: np.ndarray, margin: float) -> np.ndarray:
    """J more than ``margin`` robust z-units (median, 1.4826 MAD) below the episode's median."""
    median = np.median(j)
    spread = 1.4826 * np.median(np.abs(j - median))
    return j < median - margin * spread


def lowest_fraction(j: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of the episode's positions with the lowest J."""
    return j <= np.quantile(j, fraction)


CRITERIA: dict[str, tuple[Criterion, tuple[float, ...]]] = {
    "sd below mean": (low_certainty, (1.5, 2.0, 2.5, 3.0)),
    "robust z below median": (robust_low, (2.0, 3.0, 4.0, 6.0)),
    "lowest fraction": (lowest_fraction, (0.01, 0.02, 0.03)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default=str(DEFAULT_REFERENCE))
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--temperatures", default="1,2,4", help="temperatures of J, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, task = load_reference(args.ref)
    problems = split_problems("plus1", task.comfort_digits, args.problems, args.seed)
    characters = np.concatenate([np.array(list(target_text(a, b))) for a, b in problems])
    temperatures = [float(t) for t in args.temperatures.split(",")]
    per_temperature = [
        target_token_probs(model, problems, task.comfort_digits, certainty_temperature=t)
        for t in temperatures
    ]
    structural = np.concatenate([row.critical for row in per_temperature[0]])
    commas = structural & (characters == ",")
    digits = structural & (characters != ",")
    print(
        f"{args.ref}: N={task.comfort_digits}, {len(problems)} plus1 targets, {len(characters)} positions,"
        f" {int(commas.sum())} structural commas, {int(digits.sum())} structural digits\n"
    )
    print("| J at T | criterion | threshold | flagged | precision | recall | recall commas | recall digits |")
    print("|---|---|---|---|---|---|---|---|")
    for temperature, rows in zip(temperatures, per_temperature, strict=True):
        per_episode = [row.certainty for row in rows]
        j = np.concatenate(per_episode)
        print(
            f"| {temperature:g} | mean J | | | | | {j[commas].mean():.3f} | {j[digits].mean():.3f}"
            f" (others {j[~structural].mean():.3f}, max J {j.max():.3f}) |"
        )
        for name, (criterion, thresholds) in CRITERIA.items():
            for threshold in thresholds:
                flagged = np.concatenate([criterion(row, threshold) for row in per_episode])
                precision, recall = precision_recall(flagged, structural)
                print(
                    f"| {temperature:g} | {name} | {threshold:g} | {int(flagged.sum())} | {precision:.2f}"
                    f" | {recall:.2f} | {precision_recall(flagged, commas)[1]:.2f}"
                    f" | {precision_recall(flagged, digits)[1]:.2f} |"
                )


if __name__ == "__main__":
    main()

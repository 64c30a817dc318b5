"""The criticality ground truth against a model whose answer is known (docs/criticality.md).

A :class:`~agents.evaluation.planted.PlantedModel` plays one addition problem's target, but at
three planted sites writes the right token with probability p and the fatal pad otherwise, so the
headroom of every state on the target is known exactly. For each p this samples episodes, runs
the ground truth (the benchmark's default settings) and prints how often the 95 % intervals hold
the true H, at the sites whose estimate is noisy (the last site's continuations cannot fail), and
whether the critical labels (H >= 0.5) are right::

    python examples/criticality_planted.py --episodes 400
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.evaluation.accuracy import wilson_interval
from agents.evaluation.criticality import CriticalityConfig, ground_truth
from agents.evaluation.planted import PlantedModel
from arith_gym.codec import CharacterCodec
from arith_gym.task import get_task
from arith_gym.tokenizer import VOCAB_SIZE, encode

PROBLEM = (4821, 365)
SITES = (30, 60, 90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=400, help="episodes per p")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    addition = get_task("Addition")
    prompt, target = encode(addition.prompt(PROBLEM)), encode(addition.target(PROBLEM, 3)[0])
    print("| p | intervals (noisy sites) | coverage [95 % Wilson] | labels right |")
    print("|---|---|---|---|")
    for p in (0.5, 0.02, 0.98):
        model = PlantedModel(prompt, target, dict.fromkeys(SITES, p), VOCAB_SIZE)
        config = CriticalityConfig(problems=1, group_size=args.episodes)
        table = ground_truth(
            model, CharacterCodec(VOCAB_SIZE), "Addition", 3, config, args.seed, problems=[PROBLEM]
        )
        # Every state at a site on the target (whichever token the episode then played).
        states = ~table.deviated & np.isin(table.position, SITES)
        truth = np.array([model.headroom(int(s)) for s in table.position[states]])
        covered = (table.headroom_low[states] <= truth) & (truth <= table.headroom_high[states])
        noisy = np.array([s != max(SITES) for s in table.position[states]])
        low, high = wilson_interval(int(covered[noisy].sum()), int(noisy.sum()))
        labels = (table.critical[states] == (truth >= config.threshold)).mean()
        print(f"| {p} | {noisy.sum()} | {covered[noisy].mean():.1%} [{low:.1%}, {high:.1%}] | {labels:.1%} |")


if __name__ == "__main__":
    main()

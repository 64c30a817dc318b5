"""The prioritized KL's weight J^β at each task's decisions and elsewhere, per reference.

Teacher-forced on held-out ``plus1`` targets, the certainty J at temperature T (the ``cpu``
preset scores it at T = 1), then the mean of J^β at the structural critical tokens and at the
other target tokens, for each β given; also the decisions per episode. A weight near 1 at the
decision keeps the KL there as strong as the uniform penalty (docs/tasks.md).

    python examples/task_kl_weights.py --betas 150,1947,10718 --problems 200
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.evaluation.teacher_forcing import target_token_probs
from agents.lm.model import CHECKPOINTS_DIR, load_codec, load_reference
from arith_gym.task import task_problems

SHIPPED = ("gpt2-tiny-n3", "gpt2-tiny-multiply-n3", "gpt2-tiny-multisum-n3", "llama-tiny-bpe-n3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", default=",".join(str(CHECKPOINTS_DIR / name) for name in SHIPPED))
    parser.add_argument("--betas", default="150", help="comma-separated β values")
    parser.add_argument("--problems", type=int, default=200, help="held-out plus1 problems per reference")
    parser.add_argument("--certainty-temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    betas = [float(beta) for beta in args.betas.split(",")]
    print("| reference | task | N | decisions per episode | β | J^β at decisions | J^β elsewhere |")
    print("|---|---|---|---|---|---|---|")
    for ref in args.refs.split(","):
        model, info = load_reference(ref)
        problems = task_problems(info.task, "plus1", info.comfort_digits, args.problems, args.seed, "heldout")
        codec = load_codec(ref, model)  # a model of its own tokenizer: its tokens
        results = target_token_probs(
            model,
            problems,
            info.comfort_digits,
            1.0,
            certainty_temperature=args.certainty_temperature,
            task=info.task,
            codec=codec,
        )
        certainty = np.concatenate([r.certainty for r in results]).astype(np.float64)
        critical = np.concatenate([r.critical for r in results])
        per_episode = critical.sum() / len(results)
        for beta in betas:
            weights = certainty**beta
            at, elsewhere = weights[critical].mean(), weights[~critical].mean()
            name = ref.rstrip("/").split("/")[-1]
            cells = (name, info.task, info.comfort_digits, f"{per_episode:.2f}", f"{beta:g}")
            print("| " + " | ".join(map(str, cells)) + f" | {at:.3f} | {elsewhere:.3f} |")


if __name__ == "__main__":
    main()

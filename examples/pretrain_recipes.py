"""Compare pre-training recipes for a reference model that generalizes a little past N digits.

Each recipe pre-trains a model, then measures: greedy accuracy inside the comfort zone,
accuracy on N+1 digits (greedy and sampled at several temperatures), and, by teacher
forcing on N+1-digit problems, whether the low-probability tokens are the structural
critical tokens. Recipes run in parallel worker processes; results go to a JSON file and a
Markdown table.

    python examples/pretrain_recipes.py --out runs/recipes --steps 4000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from agents.evaluation.teacher_forcing import failures_at_critical, summarize_target_probs, target_token_probs
from agents.lm.episodes import play_episodes
from agents.lm.pretrain import PretrainConfig, pretrain
from arith_gym.operands import problems_with_digits, split_for

RECIPES: dict[str, dict] = {
    "plain": {},
    "glimpse5": {"glimpse_share": 0.05},
    "glimpse5_unscored": {"glimpse_share": 0.05, "unscored_critical": True},
    "offset64_glimpse2": {"max_position_offset": 64, "glimpse_share": 0.02},
}


def measure(model, comfort_digits: int, problems: int, temperatures: tuple[float, ...], seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    results = {}
    for digits in (comfort_digits, comfort_digits + 1):
        split = split_for(digits, comfort_digits)
        for kind in ("identical", "varying"):
            batch = problems_with_digits(rng, digits, kind, problems)
            modes = [None] if digits == comfort_digits else [None, *temperatures]
            for temperature in modes:
                solved, texts = play_episodes(model, batch, comfort_digits, split, temperature, generator)
                label = "greedy" if temperature is None else f"T{temperature:g}"
                results[f"{kind}_{digits}d_{label}"] = float(solved.mean())
                if digits > comfort_digits:
                    results[f"{kind}_{digits}d_{label}_fail_at_critical"] = failures_at_critical(
                        batch, texts, solved, comfort_digits
                    )
    plus1 = problems_with_digits(rng, comfort_digits + 1, "varying", problems)
    for temperature in (1.0, *temperatures):
        tf = summarize_target_probs(target_token_probs(model, plus1, comfort_digits, temperature))
        results.update({f"tf_T{temperature:g}_{k}": v for k, v in tf.items()})
    return results


def run_recipe(job: tuple[str, PretrainConfig, str, int, tuple[float, ...], str]) -> dict:
    name, config, out_root, problems, temperatures, device = job
    torch.set_num_threads(1)
    started = time.perf_counter()
    model = pretrain(config, Path(out_root) / name, progress=False, device=device)
    train_seconds = time.perf_counter() - started
    row = {"recipe": name, "config": asdict(config), "train_seconds": round(train_seconds, 1)}
    row.update(measure(model, config.comfort_digits, problems, temperatures, config.seed))
    brief = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "config"}
    print(json.dumps(brief), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/recipes")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names from RECIPES")
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--problems", type=int, default=200, help="problems per measured cell")
    parser.add_argument("--temperatures", default="1,1.5,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = PretrainConfig(
        comfort_digits=args.digits,
        size=args.size,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        checkpoint_every=args.steps,
        eval_every=args.steps,
    )
    temperatures = tuple(float(t) for t in args.temperatures.split(","))
    jobs = [
        (name, replace(base, **RECIPES[name]), args.out, args.problems, temperatures, args.device)
        for name in args.recipes.split(",")
    ]
    context = mp.get_context("spawn")
    with context.Pool(args.workers) as pool:
        rows = pool.map(run_recipe, jobs, chunksize=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

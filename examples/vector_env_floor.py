"""What a vector-env step must cost at least, against what 10x the single env allows.

Measures, on one thread: the single env's steps/s (``arith_gym.bench``), the Python cost of a
problem (its draw, and its prompt, scratchpad target and critical records: the task's rules),
a 256-env vector step in which no episode ends, and the parts of that step the env's contract
fixes (the observation copy, the info dict); and, as a what-if, the scripted-agent benchmark of
``arith_gym.bench`` with an info dict that carries no string or object arrays at all (the env
patched here, not shipped). docs/benchmarks.md quotes its output.

    OMP_NUM_THREADS=1 python examples/vector_env_floor.py [--num-envs 256] [--problems 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from gymnasium.utils import seeding

from arith_gym.bench import _CODE_TO_ID, bench_single, bench_vector
from arith_gym.operands import draw_operands, split_offset
from arith_gym.scratchpad import prompt_text, target_and_critical
from arith_gym.tokenizer import encode
from arith_gym.vector_env import AdditionVectorEnv

COMFORT_DIGITS, SPLIT = 3, "plus1"


def microseconds(call: Callable[[], object], repeats: int) -> float:
    """Mean microseconds per call, after a few untimed calls."""
    for _ in range(min(repeats, 10)):
        call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256, help="envs of the vector env")
    parser.add_argument("--problems", type=int, default=20_000, help="problems timed for the rules")
    parser.add_argument("--steps", type=int, default=300_000, help="single-env steps timed")
    args = parser.parse_args()
    if min(args.num_envs, args.problems, args.steps) < 1:
        parser.error("--num-envs, --problems and --steps must be positive")

    single = bench_single(args.steps, COMFORT_DIGITS, SPLIT, seed=0)
    budget = 1e6 / (10 * single)

    rng, offset = seeding.np_random(0)[0], split_offset(SPLIT)
    problems = [draw_operands(rng, offset, COMFORT_DIGITS, "all") for _ in range(args.problems)]
    draw = microseconds(lambda: draw_operands(rng, offset, COMFORT_DIGITS, "all"), args.problems)
    cycle = iter(problems * 2)

    def rules() -> None:
        a, b = next(cycle)
        prompt_text(a, b)
        target_and_critical(a, b, COMFORT_DIGITS)

    build = microseconds(rules, args.problems)
    length = float(np.mean([len(target_and_critical(a, b, COMFORT_DIGITS)[0]) for a, b in problems[:2000]]))

    env = AdditionVectorEnv(args.num_envs, COMFORT_DIGITS, SPLIT, autoreset_mode="Disabled")
    env.reset(seed=0)
    digit = np.full(args.num_envs, int(encode("1")[0]))  # a digit never ends an episode early
    step = microseconds(lambda: env.step(digit), 200)
    observation = microseconds(env._obs.copy, 2000)
    infos = microseconds(lambda: env._infos(*env._no_critical(), *env._no_results()), 2000)

    per_env = lambda us: us / args.num_envs  # noqa: E731
    print(f"single env: {single:,.0f} steps/s; 10x leaves {budget:.3f} us per env-step")
    print(f"a problem: draw {draw:.1f} us + prompt, target, critical records {build:.1f} us; ", end="")
    print(f"{length:.0f} tokens per episode: {(draw + build) / length:.3f} us per env-step")
    print(
        f"vector step, {args.num_envs} envs, none ending: {step:.1f} us = {per_env(step):.3f} us per env-step"
    )
    print(f"  the observation copy: {observation:.1f} us = {per_env(observation):.3f} us per env-step")
    print(f"  the info dict: {infos:.1f} us = {per_env(infos):.3f} us per env-step")
    floor = (draw + build) / length + per_env(observation)
    print(f"rules + observation copy: {floor:.3f} us per env-step against the {budget:.3f} us budget")
    shipped = bench_vector(args.steps, args.num_envs, COMFORT_DIGITS, SPLIT, seed=0)
    lean = vector_without_string_info(args.steps, args.num_envs)
    print(f"vector / single env: {shipped / single:.2f}x as shipped, ", end="")
    print(f"{lean / single:.2f}x with no string info (what-if)")


def vector_without_string_info(steps: int, num_envs: int) -> float:
    """Env-steps/s of ``bench_vector``'s scripted agent if ``step`` returned only the critical
    records and results in its info (the agent reads the targets from the env's own table)."""

    def lean_infos(self, critical_fields, critical_mask, correct, result, ended):
        return {
            "critical": critical_fields,
            "_critical": critical_mask,
            "correct": correct,
            "_correct": ended,
        }

    env = AdditionVectorEnv(num_envs, COMFORT_DIGITS, SPLIT)
    env._infos = lean_infos.__get__(env)
    env.reset(seed=0)
    rows, positions = np.arange(num_envs), np.zeros(num_envs, dtype=np.int64)
    resetting = np.zeros(num_envs, dtype=bool)
    batches = max(steps // num_envs, 1)
    started = 0.0
    for batch in range(batches + batches // 10):
        if batch == batches // 10:  # untimed warm-up first, as bench_vector
            started = time.perf_counter()
        codes = env._target_codes
        actions = _CODE_TO_ID[codes[rows, np.minimum(positions, codes.shape[1] - 1)]]
        _, _, terminated, truncated, _ = env.step(actions)
        positions += 1
        positions[resetting] = 0
        resetting = terminated | truncated
    return batches * num_envs / (time.perf_counter() - started)


if __name__ == "__main__":
    main()

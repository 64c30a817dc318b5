"""Steps per second of the single and the vector environment, measured in one run.

Both play the target's tokens (a scripted perfect agent), so every episode runs to its
end and is judged; the agent's own bookkeeping is counted too and kept minimal.

    python -m arith_gym.bench [--num-envs 256] [--steps 300000] [--comfort-digits 3]
                              [--split plus1] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from arith_gym.env import AdditionEnv
from arith_gym.tokenizer import ID_TO_BYTE, PAD_ID, encode
from arith_gym.vector_env import AdditionVectorEnv

WARMUP_FRACTION = 0.1  # untimed steps first: allocator and caches settle


def bench_single(steps: int, comfort_digits: int, split: str, seed: int) -> float:
    """Steps per second of one :class:`AdditionEnv` (unwrapped) playing target tokens."""
    env = AdditionEnv(comfort_digits=comfort_digits, split=split)
    _, info = env.reset(seed=seed)
    tokens, position = encode(info["target"]).tolist(), 0
    warmup = int(steps * WARMUP_FRACTION)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        _, _, terminated, truncated, info = env.step(tokens[position])
        position += 1
        if terminated or truncated:
            _, info = env.reset()
            tokens, position = encode(info["target"]).tolist(), 0
    return steps / (time.perf_counter() - start)


def bench_vector(steps: int, num_envs: int, comfort_digits: int, split: str, seed: int) -> float:
    """Env-steps per second of an :class:`AdditionVectorEnv` (NEXT_STEP autoreset).

    The scripted agent is vectorised too: each env's next token is looked up in the
    code points of ``info["target"]`` (a str array), a few numpy calls per step.
    """
    env = AdditionVectorEnv(num_envs, comfort_digits=comfort_digits, split=split)
    _, info = env.reset(seed=seed)
    rows, positions = np.arange(num_envs), np.zeros(num_envs, dtype=np.int64)
    resetting = np.zeros(num_envs, dtype=bool)
    batches = max(steps // num_envs, 1)
    warmup = max(int(batches * WARMUP_FRACTION), 1)
    start = 0.0
    for batch in range(warmup + batches):
        if batch == warmup:
            start = time.perf_counter()
        targets = info["target"]
        codes = targets.view(np.uint32).reshape(num_envs, -1)
        # Envs reset this step ignore their action; the clip keeps the lookup in range.
        actions = _CODE_TO_ID[codes[rows, np.minimum(positions, codes.shape[1] - 1)]]
        _, _, terminated, truncated, info = env.step(actions)
        positions += 1
        positions[resetting] = 0  # NEXT_STEP: these were just reset
        resetting = terminated | truncated
    return batches * num_envs / (time.perf_counter() - start)


_CODE_TO_ID = np.zeros(256, dtype=np.int64)  # ASCII code point -> token id (0 past a target's end)
_CODE_TO_ID[ID_TO_BYTE[:PAD_ID]] = np.arange(PAD_ID)


def main(argv: Sequence[str] | None = None) -> None:
    """Print both throughputs and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300_000, help="env-steps timed per environment kind")
    parser.add_argument("--comfort-digits", type=int, default=3)
    parser.add_argument("--split", default="plus1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_envs < 1 or args.steps < 1:
        parser.error("--num-envs and --steps must be positive")
    single = bench_single(args.steps, args.comfort_digits, args.split, args.seed)
    vector = bench_vector(args.steps, args.num_envs, args.comfort_digits, args.split, args.seed)
    print(f"problems: comfort_digits={args.comfort_digits} split={args.split}, scripted target tokens")
    print(f"single env:              {single:12,.0f} steps/s")
    print(f"vector env ({args.num_envs:4d} envs):  {vector:12,.0f} env-steps/s")
    print(f"ratio vector/single:     {vector / single:12.1f}x")


if __name__ == "__main__":
    main()

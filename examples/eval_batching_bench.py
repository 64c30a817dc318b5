"""The held-out evaluation set (400 plus1 + 200 comfort, sampled at T 1) played as one merged batch
against one call per split, on the shipped model, one thread, twice:

    OMP_NUM_THREADS=1 python examples/eval_batching_bench.py
"""

import time

import torch

from agents.evaluation.accuracy import EVAL_BATCH
from agents.evaluation.heldout import heldout_eval_set
from agents.lm.episodes import play_episodes
from agents.lm.model import load_reference


def main() -> None:
    torch.set_num_threads(1)
    model, task = load_reference()
    problems = heldout_eval_set(task.comfort_digits, "plus1", 400, 200)
    comfort, plus1 = problems.head("comfort"), problems.head("plus1")
    n = task.comfort_digits
    for run in range(2):
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        # As before: one call per split (batches of 256).
        solved_comfort, _ = play_episodes(model, comfort, n, "comfort", 1.0, generator)
        solved_plus1, _ = play_episodes(model, plus1, n, "plus1", 1.0, generator)
        separate = time.perf_counter() - started
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        merged_solved, _ = play_episodes(model, comfort + plus1, n, "plus1", 1.0, generator, EVAL_BATCH)
        merged = time.perf_counter() - started
        print(
            f"run {run}: separate {separate:.1f} s (comfort {solved_comfort.mean():.3f}, "
            f"plus1 {solved_plus1.mean():.3f}); merged {merged:.1f} s "
            f"(comfort {merged_solved[:200].mean():.3f}, plus1 {merged_solved[200:].mean():.3f}); "
            f"ratio {separate / merged:.2f}x"
        )


if __name__ == "__main__":
    main()

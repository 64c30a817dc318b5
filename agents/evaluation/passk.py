"""pass@k: does a model solve a problem in at least one of k samples?

The exploration question asked of RL fine-tuning: does it widen what the model can solve at
large k, or only sharpen pass@1? Each problem is sampled n times at the policy temperature;
with c of the n samples right, the unbiased estimator of Chen et al. (2021) is

    pass@k = 1 - C(n - c, k) / C(n, k)

(the share of the size-k subsets of the n samples that hold a right one), averaged over the
problems, for k = 1, 2, 4, ..., n.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.lm.episodes import play_episodes
from arith_gym.task import ProblemKey


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one problem with ``c`` right answers among ``n`` samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i): no huge binomials.
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ks_up_to(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself."""
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks if ks[-1] == n else [*ks, n]


def pass_at_k_curve(counts: Sequence[int], n: int, ks: Sequence[int] | None = None) -> dict[int, float]:
    """Mean pass@k over problems (``counts``: right answers per problem out of ``n``) for each k."""
    ks = ks_up_to(n) if ks is None else ks
    return {k: float(np.mean([pass_at_k(n, int(c), k) for c in counts])) for k in ks}


@torch.no_grad()
def correct_counts(
    model: PreTrainedModel,
    problems: Sequence[ProblemKey],
    comfort_digits: int,
    split: str,
    temperature: float,
    samples: int = 32,
    seed: int = 0,
    batch_size: int = 256,
    task: str = "Addition",
    tokenizer: Any = None,
) -> np.ndarray:
    """How many of ``samples`` sampled answers are right, for each of ``task``'s problems
    (``[len(problems)]``); ``tokenizer``: see :func:`~agents.lm.episodes.play_episodes`."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    repeated = [pair for pair in problems for _ in range(samples)]
    solved, _ = play_episodes(
        model,
        repeated,
        comfort_digits,
        split,
        temperature,
        generator,
        batch_size,
        task=task,
        tokenizer=tokenizer,
    )
    return solved.reshape(len(problems), samples).sum(axis=1)


def passk_rows(label: str, counts: np.ndarray, samples: int) -> list[dict]:
    """CSV rows ``label, k, pass_at_k, problems, samples`` for one model."""
    curve = pass_at_k_curve(counts, samples)
    return [
        {"model": label, "k": k, "pass_at_k": value, "problems": len(counts), "samples": samples}
        for k, value in curve.items()
    ]

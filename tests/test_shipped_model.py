"""The reference model that ships with the package: loads offline and adds within its comfort zone."""

import numpy as np
import torch

from agents.lm.decoding import GREEDY
from agents.lm.episodes import play_episodes
from agents.lm.model import DEFAULT_REFERENCE, load_reference
from arith_gym.operands import problems_with_digits


def test_shipped_model_loads_offline_with_its_task():
    model, task = load_reference(DEFAULT_REFERENCE)
    assert task.comfort_digits == 3 and task.temperature > 0
    assert sum(p.numel() for p in model.parameters()) < 5_000_000 / 4  # ships under 5 MB as float32


def test_shipped_model_is_at_least_95_percent_right_greedy_in_its_comfort_zone():
    model, task = load_reference(DEFAULT_REFERENCE)
    rng = np.random.default_rng(2024)
    problems = [p for kind in ("identical", "varying") for p in problems_with_digits(rng, 3, kind, 100)]
    solved, _ = play_episodes(model, problems, task.comfort_digits, "comfort", GREEDY, torch.Generator())
    assert solved.mean() >= 0.95, f"greedy comfort-zone accuracy {solved.mean():.1%}"

"""The reference-model gate, for any task: what a reference must show before RL on it means anything.

A reference pre-trained on a task's comfort zone (N) should solve it (greedy comfort accuracy
>= 99 %), solve some but not most of the next difficulty when sampled (``plus1`` between 5 % and
70 %: room for RL, and something to reinforce), and fail there at the task's structural critical
decisions (>= 90 % of sampled ``plus1`` failures first go wrong at a critical token): the
addition references pass the same gate (``agents/checkpoints/*/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.evaluation.accuracy import wilson_interval
from agents.lm.decoding import GREEDY
from agents.lm.episodes import play_episodes
from arith_gym.task import Task, error_kind, get_task, heldout_draws

GATE = {"comfort_greedy": 0.99, "plus1_low": 0.05, "plus1_high": 0.70, "critical_share": 0.90}


@dataclass(frozen=True)
class GateResult:
    comfort_greedy: float
    plus1_sampled: float
    failures: int
    first_wrong_at_critical: float
    """The share of sampled ``plus1`` failures whose first wrong token is a structural critical one."""
    problems: int

    @property
    def passed(self) -> bool:
        return (
            self.comfort_greedy >= GATE["comfort_greedy"]
            and GATE["plus1_low"] <= self.plus1_sampled <= GATE["plus1_high"]
            and self.first_wrong_at_critical >= GATE["critical_share"]
        )

    def markdown(self) -> str:
        def cell(share: float, n: int) -> str:
            low, high = wilson_interval(round(share * n), n)
            return f"{100 * share:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"

        rows = [
            f"| greedy comfort accuracy (>= 99 %) | {cell(self.comfort_greedy, self.problems)} |",
            f"| sampled plus1 accuracy (5-70 %) | {cell(self.plus1_sampled, self.problems)} |",
            f"| plus1 failures first wrong at a critical token (>= 90 %) | "
            f"{cell(self.first_wrong_at_critical, self.failures) if self.failures else 'no failures'} |",
        ]
        verdict = "passes" if self.passed else "does not pass"
        return "\n".join(
            ["| gate | measured (95% Wilson CI) |", "|---|---|", *rows, "", f"The model {verdict} the gate."]
        )


def task_gate(
    model: PreTrainedModel,
    task: str | Task,
    comfort_digits: int,
    temperature: float,
    problems: int = 1000,
    seed: int = 0,
    batch: int = 128,
    tokenizer: Any = None,
) -> GateResult:
    """Measure the gate on ``problems`` held-out problems of each split (drawn with ``seed``);
    ``tokenizer``: a model of another tokenizer's (:func:`~agents.lm.episodes.play_episodes`)."""
    task = get_task(task)
    comfort, harder = heldout_draws(task, comfort_digits, problems, seed)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    greedy, _ = play_episodes(
        model, comfort, comfort_digits, "comfort", GREEDY, generator, batch, task=task, tokenizer=tokenizer
    )
    sampled, texts = play_episodes(
        model, harder, comfort_digits, "plus1", temperature, generator, batch, task=task, tokenizer=tokenizer
    )
    at_critical = [
        error_kind(task, problem, comfort_digits, text, tokenizer) == "critical"
        for problem, text, solved in zip(harder, texts, sampled, strict=True)
        if not solved
    ]
    share = float(np.mean(at_critical)) if at_critical else 0.0
    return GateResult(float(greedy.mean()), float(sampled.mean()), len(at_critical), share, problems)

"""Accuracy of a model on the addition task, with 95% confidence intervals.

The reference-model table follows the paper's Tables 4 and 5: for a model trained on 1..N
digits, columns N, N+1, N+2, N+3 digits; "identical" problems have both operands that long,
"varying" ones have one operand that long (side drawn uniformly) and the other 1..that long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.evaluation.heldout import EvalSet, heldout_eval_set
from agents.evaluation.teacher_forcing import critical_probabilities
from agents.lm.decoding import GREEDY
from agents.lm.episodes import play_episodes
from arith_gym.operands import LENGTH_KINDS, problems_with_digits, split_for, split_problems
from arith_gym.task import ProblemKey, error_kind, error_kinds


@dataclass(frozen=True)
class Accuracy:
    """``successes`` out of ``total`` with a Wilson 95% interval."""

    successes: int
    total: int

    @property
    def rate(self) -> float:
        return self.successes / self.total if self.total else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.total)

    def __str__(self) -> str:
        low, high = self.interval
        return f"{100 * self.rate:5.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound at 0% and 100%, unlike Wald's)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def length_table(
    model: PreTrainedModel,
    comfort_digits: int,
    problems_per_cell: int = 1000,
    temperature: float = GREEDY,
    offsets: tuple[int, ...] = (0, 1, 2, 3),
    seed: int = 0,
    batch_size: int = 256,
) -> dict[tuple[str, int], Accuracy]:
    """Exact-match accuracy per (kind, digits) cell; greedy at ``temperature=0`` (the default)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    table = {}
    for kind in LENGTH_KINDS:
        for offset in offsets:
            digits = comfort_digits + offset
            problems = problems_with_digits(rng, digits, kind, problems_per_cell)
            solved, _ = play_episodes(
                model,
                problems,
                comfort_digits,
                split_for(digits, comfort_digits),
                temperature,
                generator,
                batch_size,
            )
            table[(kind, digits)] = Accuracy(int(solved.sum()), len(solved))
    return table


def format_length_table(table: dict[tuple[str, int], Accuracy], comfort_digits: int, title: str = "") -> str:
    """Markdown table: a row per kind, a column per digit count (N, N+1, ...)."""
    digit_counts = sorted({digits for _, digits in table})
    header = "| " + " | ".join(
        ["", *(f"{d} digits" + (" (N)" if d == comfort_digits else "") for d in digit_counts)]
    )
    lines = [f"**{title}**" if title else "", header + " |", "|" + "---|" * (len(digit_counts) + 1)]
    for kind in LENGTH_KINDS:
        cells = [str(table[(kind, d)]) for d in digit_counts if (kind, d) in table]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(line for line in lines if line) + "\n"


def policy_accuracy(
    model: PreTrainedModel,
    comfort_digits: int,
    split: str,
    episodes: int = 100,
    temperature: float = GREEDY,
    seed: int = 0,
    batch_size: int = 256,
    problems: list[tuple[int, int]] | None = None,
) -> Accuracy:
    """Accuracy on ``problems`` of ``split`` (None: ``episodes`` problems drawn with ``seed``),
    sampled with ``seed`` (greedy at ``temperature=0``)."""
    if problems is None:
        problems = split_problems(split, comfort_digits, episodes, seed)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    solved, _ = play_episodes(model, problems, comfort_digits, split, temperature, generator, batch_size)
    return Accuracy(int(solved.sum()), len(solved))


EVAL_BATCH = 1024
"""Episodes decoded side by side in an evaluation (a KV cache of the tiny model: ~2 MB each)."""

HEAD = "_head"
"""Suffix of the final evaluation's figures on its first ``critical_episodes`` problems only (the
intermediate evaluations' problems): ``plus1_sampled_head``, ``plus1_problems_head``. A curve drawn
from them stays on one problem set to its last point; the set's later problems are often harder."""


def rl_evaluation(
    model: PreTrainedModel,
    comfort_digits: int,
    split: str,
    temperature: float,
    episodes: int | None = 100,
    seed: int = 0,
    greedy: bool = True,
    eval_set: EvalSet | None = None,
    critical_episodes: int | None = None,
    tokenizer: Any = None,
) -> dict[str, float]:
    """Sampled (and greedy) accuracy on ``comfort`` and ``split``, and p(right) per critical label.

    The problems are the first ``episodes`` of each split of ``eval_set`` (all of them for None;
    default: a held-out addition set of ``episodes`` problems per split drawn with seed 0; the
    set's task is the one played), so every call,
    run and method sees the same ones; ``seed`` drives the sampling. ``{name}_problems`` says how
    many problems each accuracy is over. The teacher-forced p(right) per critical label is taken
    on the first ``critical_episodes`` problems of ``split`` (None: ``episodes``); a trainer passes
    its intermediate count, so the curve of every label is on the same problems at every evaluation;
    an evaluation over more problems than that also gives its accuracies on those first ones
    (suffix :data:`HEAD`).
    ``tokenizer``: the model's own (:func:`~agents.lm.episodes.play_episodes`); the teacher-forced
    p(right) per label is then left out (it reads the character ids).
    """
    if eval_set is None:
        count = 100 if episodes is None else episodes
        eval_set = heldout_eval_set(comfort_digits, split, count, count)
    metrics: dict[str, float] = {}
    task = eval_set.task
    names = list(dict.fromkeys(("comfort", split)))
    problems = {name: eval_set.head(name, episodes) for name in names}
    everything = [pair for name in names for pair in problems[name]]
    bounds = np.cumsum([0, *(len(problems[name]) for name in names)])
    for label, temp in (("sampled", temperature), ("greedy", GREEDY))[: 2 if greedy else 1]:
        # Both splits in one batch, sized by the harder split: one decoding loop, not two.
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        solved, texts = play_episodes(
            model,
            everything,
            comfort_digits,
            split,
            temp,
            generator,
            EVAL_BATCH,
            task=task,
            tokenizer=tokenizer,
        )
        for name, start, end in zip(names, bounds[:-1], bounds[1:], strict=True):
            metrics[f"{name}_problems"] = int(end - start)
            metrics[f"{name}_{label}"] = float(solved[start:end].mean())
            if critical_episodes is not None and critical_episodes < end - start:
                metrics[f"{name}_problems{HEAD}"] = critical_episodes
                metrics[f"{name}_{label}{HEAD}"] = float(solved[start : start + critical_episodes].mean())
            if name == split and label == "sampled":
                chosen = slice(start, end)
                metrics.update(
                    error_shares(
                        problems[name], texts[chosen], solved[chosen], comfort_digits, split, task, tokenizer
                    )
                )
    if tokenizer is not None:  # the teacher-forced probabilities read the character ids
        return metrics
    problems = eval_set.head(split, episodes if critical_episodes is None else critical_episodes)
    for label, prob in critical_probabilities(model, problems, comfort_digits, temperature, task).items():
        metrics[f"p_critical/{label}"] = prob
    return metrics


def error_shares(
    problems: list[ProblemKey],
    texts: list[str],
    solved: np.ndarray,
    comfort_digits: int,
    split: str,
    task: str = "Addition",
    tokenizer: Any = None,
) -> dict[str, float]:
    """``{split}_failures`` (how many episodes failed) and ``{split}_errors/{kind}``: the share of
    those whose first wrong token is of each kind (:func:`arith_gym.task.error_kinds`; addition's
    :mod:`arith_gym.anatomy`; 0 without failures). ``critical`` is a structural critical token."""
    episodes = zip(problems, texts, solved, strict=True)
    kinds = [
        error_kind(task, problem, comfort_digits, text, tokenizer) for problem, text, ok in episodes if not ok
    ]
    shares = {f"{split}_failures": float(len(kinds))}
    for kind in error_kinds(task):
        shares[f"{split}_errors/{kind}"] = kinds.count(kind) / len(kinds) if kinds else 0.0
    return shares

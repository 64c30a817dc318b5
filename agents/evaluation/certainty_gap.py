"""The certainty gap: is a reference model less sure at the critical tokens than elsewhere?

After the paper's Table 1: per sampled (N+1)-digit episode (``plus1``), the reference's mean
certainty J at the structural critical tokens (``docs/format.md``) minus its mean J at the
other target tokens, averaged over episodes with a 95% t interval (the paper: -0.33 at N=3).

J at generated position t comes from the reference's distribution over token t, which
depends only on the tokens before t: with the context on track, it is the teacher-forced J.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.evaluation.stats import mean_ci
from agents.kl import certainty
from agents.lm.episodes import play_episodes
from arith_gym.task import ProblemKey, critical_positions, first_deviation, get_task, task_problems
from arith_gym.tokenizer import PAD_ID, encode

PAPER_GAPS = {3: -0.33, 5: -0.21, 7: -0.13}  # the paper's Table 1, critical minus others
SOURCES = ("sampled", "target")


@torch.no_grad()
def reference_logits(
    model: PreTrainedModel,
    problems: Sequence[ProblemKey],
    texts: Sequence[str],
    batch_size: int = 64,
    task: str = "Addition",
) -> list[torch.Tensor]:
    """Raw logits ``[len(text) + 1, V]`` of the distributions over each token of ``text`` and the next.

    One teacher-forced forward over ``task``'s prompt + text per batch of right-padded rows.
    """
    device = next(model.parameters()).device
    prompts = [get_task(task).prompt(problem) for problem in problems]
    sequences = [encode(prompt + text) for prompt, text in zip(prompts, texts, strict=True)]
    starts = [len(prompt) - 1 for prompt in prompts]
    out: list[torch.Tensor] = []
    for begin in range(0, len(sequences), batch_size):
        chunk = sequences[begin : begin + batch_size]
        ids = torch.full((len(chunk), max(map(len, chunk))), PAD_ID, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, sequence in enumerate(chunk):
            ids[row, : len(sequence)] = torch.as_tensor(sequence)
            mask[row, : len(sequence)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
        for row, sequence in enumerate(chunk):
            out.append(logits[row, starts[begin + row] : len(sequence)])
    return out


def on_track_length(text: str, target: str) -> int:
    """How many target positions have an on-track context: all before the first deviation, and it."""
    where = first_deviation(text, target)
    return len(target) if where is None else min(where + 1, len(target))


def _problems_and_texts(
    model: PreTrainedModel,
    comfort_digits: int,
    split: str,
    count: int,
    source: str,
    temperature: float,
    seed: int,
    batch_size: int,
    task: str = "Addition",
) -> tuple[list[ProblemKey], list[str], np.ndarray]:
    """``count`` problems of ``task``'s ``split`` and the episodes played on them (or their targets)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    problems = task_problems(task, split, comfort_digits, count, seed)
    if source == "target":
        texts = [get_task(task).target(problem, comfort_digits)[0] for problem in problems]
        return problems, texts, np.ones(count, dtype=bool)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    solved, texts = play_episodes(
        model, problems, comfort_digits, split, temperature, generator, batch_size, task=task
    )
    return problems, texts, solved


@dataclass(frozen=True)
class CertaintyGap:
    """The paper's Table 1 for one model: J at critical tokens minus J elsewhere, per episode.

    ``gaps``, ``critical`` and ``other`` hold one value per episode used (an episode needs an
    on-track critical token and an on-track other token); ``gap``/``low``/``high`` are the
    mean gap and its 95% t interval (NaN when fewer than two episodes are used).
    """

    comfort_digits: int
    split: str
    source: str
    temperature: float
    certainty_temperature: float
    certainty_kind: str
    episodes: int
    accuracy: float
    gaps: np.ndarray
    critical: np.ndarray
    other: np.ndarray
    gap: float
    low: float
    high: float

    @property
    def used(self) -> int:
        return len(self.gaps)


def certainty_gap(
    model: PreTrainedModel,
    comfort_digits: int,
    temperature: float = 1.0,
    episodes: int = 200,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
    split: str = "plus1",
    source: str = "sampled",
    seed: int = 0,
    batch_size: int = 128,
    task: str = "Addition",
) -> CertaintyGap:
    """Mean certainty J at the structural critical tokens minus J at the other target tokens
    (of ``task``, addition by default).

    Episodes are sampled from ``model`` at ``temperature`` on ``split`` problems (``source=
    "target"``: the right texts instead, i.e. teacher forcing). Each episode counts the
    target positions whose context is on track (see :func:`on_track_length`): stopping at
    the first deviation keeps J comparable, and keeping the deviation itself keeps the
    critical tokens where sampled episodes go wrong.
    """
    problems, texts, solved = _problems_and_texts(
        model, comfort_digits, split, episodes, source, temperature, seed, batch_size, task
    )
    gaps, critical_means, other_means = [], [], []
    logits_all = reference_logits(model, problems, texts, batch_size, task)
    for problem, text, logits in zip(problems, texts, logits_all, strict=True):
        length = on_track_length(text, get_task(task).target(problem, comfort_digits)[0])
        j = certainty(logits[:length], certainty_temperature, certainty_kind).numpy()
        critical = critical_positions(task, problem, comfort_digits, length)
        if critical.any() and not critical.all():
            critical_means.append(float(j[critical].mean()))
            other_means.append(float(j[~critical].mean()))
            gaps.append(critical_means[-1] - other_means[-1])
    estimate = mean_ci(gaps) if gaps else None
    return CertaintyGap(
        comfort_digits,
        split,
        source,
        temperature,
        certainty_temperature,
        certainty_kind,
        episodes,
        float(solved.mean()),
        np.asarray(gaps),
        np.asarray(critical_means),
        np.asarray(other_means),
        *((estimate.mean, estimate.low, estimate.high) if estimate else (float("nan"),) * 3),
    )


def format_gap(gap: CertaintyGap) -> str:
    """The certainty gap, Markdown-friendly."""
    paper = PAPER_GAPS.get(gap.comfort_digits)
    versus = f" (paper, N={gap.comfort_digits}: {paper:+.2f})" if paper is not None else ""
    lines = [
        f"**Certainty gap** (Table 1): J = {_kind_formula(gap.certainty_kind)}"
        f" at T={gap.certainty_temperature:g}; {gap.episodes} {gap.source} {gap.split} episodes"
        f" at T={gap.temperature:g} ({100 * gap.accuracy:.1f}% correct),"
        f" {gap.used} with on-track critical tokens",
        f"- critical minus other: {gap.gap:+.3f}, 95% CI [{gap.low:+.3f}, {gap.high:+.3f}]{versus}",
        f"- mean J: {_mean(gap.critical):.3f} at critical tokens, {_mean(gap.other):.3f} at the others",
    ]
    return "\n".join(lines) + "\n"


def _kind_formula(kind: str) -> str:
    return "1 - H(p)/log|V|" if kind == "negentropy" else "1 + log max p / log|V|"


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")

"""What an update trains on: one batch of episodes, in groups of G per problem, DAPO-filtered.

- ``group_size == 1``: every sub-env draws its own problem (the env's seeded generators).
- ``group_size == G >= 2``: P = B / G problems are drawn from the split with a seeded generator
  and each is forced on G side-by-side sub-envs (``reset(options={"operands": ...})``); the
  rollout's ``groups`` says which episodes share a problem.
- ``dynamic_sampling`` (DAPO): groups whose rewards are all equal carry no signal for a group
  estimator; they are dropped and new problems are played until the batch holds P informative
  groups, or ``max_sampling_rounds`` rollouts have been played (then it trains on the
  informative groups it has, or on the last rollout if it found none). Every episode played
  counts against the budget.

The frozen reference scores only the episodes that are kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from transformers import PreTrainedModel

from agents.rl.policy import LMPolicy
from agents.rl.rollout import Rollout, collect_rollout, with_reference
from arith_gym.task import ProblemKey, Task, task_problems
from arith_gym.tokenizer import PAD_ID


def derived_seed(seed: int, *keys: int) -> int:
    """An independent seed for the stream ``keys`` of a run seeded ``seed`` (e.g. one per update)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


@dataclass(frozen=True)
class SamplingStats:
    """What sampling one update's batch cost and dropped."""

    sampled_episodes: int  # every episode played, the dropped ones included
    sampled_accuracy: float  # over all of them
    rounds: int  # rollouts played
    dropped_groups: int  # groups whose rewards were all equal, dropped (dynamic sampling)
    kept_groups: int  # groups the update trains on (0 if dynamic sampling found no informative one)

    def as_row(self) -> dict[str, float]:
        return {
            "sampled_episodes": self.sampled_episodes,
            "train_accuracy": self.sampled_accuracy,
            "sampling_rounds": self.rounds,
            "dropped_groups": self.dropped_groups,
            "kept_groups": self.kept_groups,
        }


def grouped_operands(
    seed: int, split: str, comfort_digits: int, problems: int, group_size: int, task: str | Task = "Addition"
) -> list[ProblemKey]:
    """``problems`` training problems of ``task``'s ``split`` (never held-out ones) drawn with
    ``seed``, each repeated ``group_size`` times in a row."""
    drawn = task_problems(task, split, comfort_digits, problems, seed, problem_set="train")
    return [problem for problem in drawn for _ in range(group_size)]


def constant_groups(rollout: Rollout) -> torch.Tensor:
    """Bool ``[B]``: the episodes whose group's env rewards are all equal (no signal for GRPO)."""
    scores = (rollout.rewards * rollout.mask).sum(dim=1)
    _, index = torch.unique(rollout.groups, return_inverse=True)
    groups = int(index.max()) + 1
    high = torch.full((groups,), -math.inf, device=scores.device).scatter_reduce(0, index, scores, "amax")
    low = torch.full((groups,), math.inf, device=scores.device).scatter_reduce(0, index, scores, "amin")
    return (high == low)[index]


def sample_batch(
    policy: LMPolicy,
    reference: PreTrainedModel | None,
    env: VectorEnv,
    generator: torch.Generator,
    seed: int,
    group_size: int = 1,
    dynamic_sampling: bool = False,
    max_rounds: int = 1,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
) -> tuple[Rollout, SamplingStats]:
    """One update's batch of ``env.num_envs`` episodes (see the module docstring), scored by ``reference``."""
    batch = env.num_envs
    score = dict(certainty_temperature=certainty_temperature, certainty_kind=certainty_kind)
    if group_size == 1 and not dynamic_sampling:
        rollout = collect_rollout(policy, reference, env, generator, seed=seed, **score)
        return rollout, SamplingStats(batch, rollout.accuracy(), 1, 0, batch)

    config = env.unwrapped.config
    problems = batch // group_size
    kept: list[Rollout] = []
    kept_groups = dropped = rounds = 0
    correct = []
    for rounds in range(1, (max_rounds if dynamic_sampling else 1) + 1):
        round_seed = seed if rounds == 1 else derived_seed(seed, rounds)
        operands = grouped_operands(
            round_seed, config.split, config.comfort_digits, problems, group_size, config.task
        )
        rollout = collect_rollout(
            policy, None, env, generator, seed=round_seed, options={"operands": operands}, **score
        )
        groups = torch.arange(batch, device=rollout.mask.device) // group_size + (rounds - 1) * problems
        rollout = replace(rollout, groups=groups)
        correct.append(rollout.correct)
        if not dynamic_sampling:
            kept, kept_groups = [rollout], problems
            break
        informative = ~constant_groups(rollout)
        dropped += problems - int(informative.sum()) // group_size
        take = min(problems - kept_groups, int(informative.sum()) // group_size)
        if take:
            rows = informative.nonzero().squeeze(1)[: take * group_size]
            kept.append(select_rows(rollout, rows))
            kept_groups += take
        if kept_groups == problems:
            break
    # No informative group at all: train on the last rollout (advantages 0; the KL still acts).
    rollout = concat_rollouts(kept or [rollout])
    if reference is not None:
        started = time.perf_counter()
        rollout = with_reference(rollout, reference, policy.temperature, **score)
        seconds = time.perf_counter() - started
        timings = {**rollout.timings, "reference": seconds}
        timings["total"] = timings.get("total", 0.0) + seconds
        rollout = replace(rollout, timings=timings)
    sampled = np.concatenate(correct)
    return rollout, SamplingStats(len(sampled), float(sampled.mean()), rounds, dropped, kept_groups)


_PER_EPISODE = ("prompt_ids", "prompt_mask", "actions", "mask", "logp", "entropy", "values", "log_probs")
_PER_EPISODE += ("rewards", "dones", "critical", "critical_labels", "groups")


def select_rows(rollout: Rollout, rows: torch.Tensor) -> Rollout:
    """The episodes ``rows`` of an unscored rollout."""
    picked = {name: getattr(rollout, name)[rows] for name in _PER_EPISODE}
    return Rollout(
        **picked,
        correct=rollout.correct[rows.cpu().numpy()],
        max_steps=rollout.max_steps,
        timings=rollout.timings,
    )


def concat_rollouts(parts: list[Rollout]) -> Rollout:
    """Unscored rollouts stacked into one: prompts left-padded to the widest, episodes right-padded
    to the longest (padding is masked out, and the reference scores the result afterwards)."""
    if len(parts) == 1:
        return parts[0]
    width = max(part.prompt_ids.shape[1] for part in parts)
    steps = max(part.actions.shape[1] for part in parts)
    vocab = parts[0].log_probs.shape[-1]
    fill = {"prompt_ids": PAD_ID, "actions": PAD_ID, "log_probs": -math.log(vocab), "critical_labels": -1}
    stacked = {}
    for name in _PER_EPISODE:
        tensors = [getattr(part, name) for part in parts]
        if name in ("prompt_ids", "prompt_mask"):  # left padding keeps the positions
            tensors = [_pad_columns(t, width, fill.get(name, 0), left=True) for t in tensors]
        elif tensors[0].dim() >= 2:
            tensors = [_pad_columns(t, steps, fill.get(name, 0)) for t in tensors]
        stacked[name] = torch.cat(tensors)
    timings: dict[str, float] = {}
    for part in parts:
        for key, value in part.timings.items():
            timings[key] = timings.get(key, 0.0) + value
    correct = np.concatenate([part.correct for part in parts])
    return Rollout(**stacked, correct=correct, max_steps=parts[0].max_steps, timings=timings)


def _pad_columns(tensor: torch.Tensor, width: int, value: float, left: bool = False) -> torch.Tensor:
    """``tensor`` with dimension 1 padded to ``width`` with ``value`` (on the left if ``left``)."""
    shape = list(tensor.shape)
    missing, shape[1] = width - shape[1], width
    padded = tensor.new_full(shape, value)
    if left:
        padded[:, missing:] = tensor
    else:
        padded[:, : tensor.shape[1]] = tensor
    return padded

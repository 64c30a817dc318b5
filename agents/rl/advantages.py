"""Advantage estimators: each a small pure function from a batch of episodes to per-token advantages.

Every estimator takes an :class:`AdvantageInputs` of ``[B, T]`` tensors (B episodes of at most
T tokens, ``mask`` marking the tokens played) and returns :class:`Advantages`. The task's reward
is an outcome reward: 0 at every token but the last, where the env pays 1 for a right result
(minus the weighted KL at every token when the KL goes in the reward). An episode's outcome
score ``r`` is the sum of its rewards. The group estimators compare the ``G`` episodes that
played one problem (``groups`` holds equal ids for them) and give every token of an episode
the episode's advantage.

Register your own with :func:`register_advantage`; ``uses_critic`` makes the update train the
value head on the returned ``returns``, ``needs_groups`` makes the sampler play each problem
``group_size >= 2`` times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from agents.rl.registry import Registry

STD_EPS = 1e-6
"""Added to a group's standard deviation (GRPO): a group whose rewards are all equal gets 0."""


@dataclass(frozen=True)
class AdvantageInputs:
    """What an estimator may read (all ``[B, T]`` unless noted)."""

    rewards: torch.Tensor
    mask: torch.Tensor  # bool: the tokens played
    values: torch.Tensor  # the critic's values at sampling time (zeros where unused)
    groups: torch.Tensor  # [B] long: episodes with equal ids played the same problem
    gamma: float = 1.0
    gae_lambda: float = 1.0
    normalize: bool = True  # gae: whiten the advantages over the batch


@dataclass(frozen=True)
class Advantages:
    """Per-token advantages ``[B, T]`` (0 off the mask), and the value targets if a critic learns."""

    advantages: torch.Tensor
    returns: torch.Tensor | None = None


@dataclass(frozen=True)
class AdvantageEstimator:
    fn: Callable[[AdvantageInputs], Advantages]
    uses_critic: bool = False
    needs_groups: bool = False


ADVANTAGES: Registry[AdvantageEstimator] = Registry("advantage estimator")


def register_advantage(name: str, *, uses_critic: bool = False, needs_groups: bool = False) -> Callable:
    """Decorator: register ``fn(inputs: AdvantageInputs) -> Advantages`` as estimator ``name``."""
    return ADVANTAGES.decorator(name, lambda fn: AdvantageEstimator(fn, uses_critic, needs_groups))


# --------------------------------------------------------------------------- helpers


def outcome_scores(inputs: AdvantageInputs) -> torch.Tensor:
    """``[B]``: each episode's score r, the sum of its (shaped) rewards."""
    return (inputs.rewards * inputs.mask).sum(dim=1)


def group_mean_std(
    scores: torch.Tensor, groups: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per episode ``[B]``: its group's mean score, standard deviation (unbiased) and size.

    Raises:
        ValueError: a group with a single episode (``group_size`` must be at least 2).
    """
    _, index, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    if int(counts.min()) < 2:
        raise ValueError("group advantage estimators need at least 2 episodes per problem (group_size >= 2)")
    sums = torch.zeros(len(counts), dtype=scores.dtype, device=scores.device).index_add_(0, index, scores)
    means = sums / counts
    squares = torch.zeros_like(sums).index_add_(0, index, (scores - means[index]) ** 2)
    stds = (squares / (counts - 1)).sqrt()
    return means[index], stds[index], counts[index].to(scores.dtype)


def spread(per_episode: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B] -> [B, T]``: every played token of an episode gets the episode's value."""
    return per_episode[:, None] * mask


def whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` over the played tokens of the whole batch (population std), 0 elsewhere."""
    live = values[mask]
    return (values - live.mean()) / (live.std(correction=0) + 1e-8) * mask


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = sum_{s >= t} gamma^(s-t) r_s`` within each episode (reward-to-go)."""
    zeros = torch.zeros_like(rewards)
    return gae_advantages(rewards, zeros, mask, gamma, 1.0)


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Generalized advantage estimates over ``[B, T]`` episodes that end at ``mask``'s end."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], device=rewards.device)
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        # The next token belongs to the episode iff it is masked in; past the end, value 0.
        next_live = mask[:, t + 1].float() if t + 1 < steps else torch.zeros_like(last)
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value * next_live - values[:, t]
        last = delta + gamma * lam * next_live * last
        advantages[:, t] = last
    return advantages * mask


# --------------------------------------------------------------------------- the estimators


@register_advantage("gae", uses_critic=True)
def gae(inputs: AdvantageInputs) -> Advantages:
    """GAE(gamma, lambda) with the critic: ``A_t = sum_l (gamma lambda)^l delta_{t+l}``,
    ``delta_t = r_t + gamma V_{t+1} - V_t``; returns ``A_t + V_t``; then, if ``normalize``, the
    advantages are whitened over the batch (PPO / A2C)."""
    advantages = gae_advantages(inputs.rewards, inputs.values, inputs.mask, inputs.gamma, inputs.gae_lambda)
    returns = (advantages + inputs.values) * inputs.mask
    if inputs.normalize:
        advantages = whiten(advantages, inputs.mask)
    return Advantages(advantages, returns)


@register_advantage("grpo", needs_groups=True)
def grpo(inputs: AdvantageInputs) -> Advantages:
    """GRPO (Shao et al. 2024): ``A_i = (r_i - mean_g r) / (std_g r + 1e-6)``, std unbiased over the group."""
    scores = outcome_scores(inputs)
    mean, std, _ = group_mean_std(scores, inputs.groups)
    return Advantages(spread((scores - mean) / (std + STD_EPS), inputs.mask))


@register_advantage("dr_grpo", needs_groups=True)
def dr_grpo(inputs: AdvantageInputs) -> Advantages:
    """Dr. GRPO (Liu et al. 2025): ``A_i = r_i - mean_g r`` (no division by the group's std)."""
    scores = outcome_scores(inputs)
    mean, _, _ = group_mean_std(scores, inputs.groups)
    return Advantages(spread(scores - mean, inputs.mask))


@register_advantage("rloo", needs_groups=True)
def rloo(inputs: AdvantageInputs) -> Advantages:
    """RLOO (Ahmadian et al. 2024): ``A_i = r_i - mean_{j != i} r_j = G / (G - 1) (r_i - mean_g r)``."""
    scores = outcome_scores(inputs)
    mean, _, size = group_mean_std(scores, inputs.groups)
    others = (mean * size - scores) / (size - 1)
    return Advantages(spread(scores - others, inputs.mask))


@register_advantage("reinforce_pp")
def reinforce_pp(inputs: AdvantageInputs) -> Advantages:
    """REINFORCE++ (Hu 2025): the reward-to-go ``G_t`` of the per-token rewards (the KL goes in
    the reward in its preset), whitened over every played token of the batch."""
    returns = discounted_returns(inputs.rewards, inputs.mask, inputs.gamma)
    return Advantages(whiten(returns, inputs.mask))


@register_advantage("reinforce_pp_baseline", needs_groups=True)
def reinforce_pp_baseline(inputs: AdvantageInputs) -> Advantages:
    """REINFORCE++ with a group baseline: ``G_t - mean_g r`` (the group's mean score), then
    whitened over every played token of the batch."""
    returns = discounted_returns(inputs.rewards, inputs.mask, inputs.gamma)
    mean, _, _ = group_mean_std(outcome_scores(inputs), inputs.groups)
    return Advantages(whiten(returns - spread(mean, inputs.mask), inputs.mask))

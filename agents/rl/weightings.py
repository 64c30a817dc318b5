"""Per-token KL weightings: how much of the KL to the reference each played token pays.

A weighting maps a scored :class:`~agents.rl.rollout.Rollout` and the run's
:class:`~agents.rl.config.RLConfig` to weights ``[B, T]`` (masked afterwards). The built-in
ones are the paper's: ``none`` (0), ``uniform`` (1, the standard KL), ``critical`` (J^beta, J
the reference's certainty, see :mod:`agents.kl`) and ``oracle_critical`` (0 exactly on the
tokens the env labels critical, 1 elsewhere: it knows the template).

Beyond the paper, with no template: ``group_fork`` (0 where a group of episodes of one problem
forks with different rewards, :func:`group_forks`; 1 elsewhere) and ``group_fork_critical``
(the same times J^beta). The calibrated β of ``critical_auto`` is :mod:`agents.rl.calibration`.

Register your own with :func:`register_kl_weighting`; it also becomes a method of the same
name (``--method NAME``, ``compare --methods NAME``) that sets only ``kl_weighting``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from agents.kl import kl_weights
from agents.rl.config import RLConfig
from agents.rl.methods import register_method
from agents.rl.registry import Registry
from agents.rl.rollout import Rollout

KLWeighting = Callable[[Rollout, RLConfig], torch.Tensor]
KL_WEIGHTING_FUNCTIONS: Registry[KLWeighting] = Registry("KL weighting")


def register_kl_weighting(
    name: str, *, method: bool = True, needs_groups: bool = False, needs_critic: bool = False
) -> Callable:
    """Decorator: register ``fn(rollout, config) -> weights [B, T]`` as KL weighting ``name``
    (and, with ``method``, the method ``name`` that selects it). ``needs_groups``: it reads the
    groups of episodes of one problem, so a run must have ``group_size >= 2``; ``needs_critic``:
    it reads the critic's values, so the advantage estimator must train one (both checked at start)."""

    def register(fn: KLWeighting) -> KLWeighting:
        fn.needs_groups, fn.needs_critic = needs_groups, needs_critic
        KL_WEIGHTING_FUNCTIONS.add(name, fn)
        if method:
            register_method(name, kl_weighting=name)
        return fn

    return register


def top_fraction(scores: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool [B, T]: the ``fraction`` of live tokens (at least one) with the highest ``scores``."""
    live = scores[mask]
    count = max(1, round(fraction * live.numel()))
    threshold = live.topk(count).values[-1]
    return (scores >= threshold) & mask


def token_kl_weights(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """The weights ``[B, T]`` of ``config.kl_weighting`` on ``rollout``, 0 off its mask."""
    weights = KL_WEIGHTING_FUNCTIONS[config.kl_weighting](rollout, config)
    return weights.to(rollout.logp.dtype).expand_as(rollout.logp) * rollout.mask


def _certainty_weighting(kind: str) -> KLWeighting:
    def weighting(rollout: Rollout, config: RLConfig) -> torch.Tensor:
        return kl_weights(kind, rollout.certainty, config.beta, config.weight_floor)

    weighting.__doc__ = f"``agents.kl.kl_weights({kind!r}, J, beta, floor)``."
    return weighting


for _name in ("none", "uniform", "critical"):
    # Their methods are in agents.rl.methods (``critical`` also fixes the certainty kind).
    register_kl_weighting(_name, method=False)(_certainty_weighting(_name))


@register_kl_weighting("oracle_critical", method=False)
def oracle_critical(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """0 on the tokens the env labels critical, 1 elsewhere (an upper bound: it knows the template)."""
    return (~rollout.critical).float()


def group_forks(
    actions: torch.Tensor, mask: torch.Tensor, groups: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """Bool ``[B, T]``: the group's forking decisions, found from the data alone.

    A played token is a fork when another episode of its group (same problem) shares its whole
    prefix, took a different token there, and the episodes continuing with the different tokens
    end with different mean scores. ``scores``: each episode's outcome ``[B]``.
    """
    actions_np, mask_np = actions.cpu().numpy(), mask.cpu().numpy()
    scores_np = scores.detach().cpu().double().numpy()
    _, prefix = np.unique(groups.cpu().numpy(), return_inverse=True)  # the empty prefix: one per group
    vocab = int(actions_np.max(initial=0)) + 1
    forks = np.zeros(actions_np.shape, dtype=bool)
    for t in range(actions_np.shape[1]):
        rows = np.flatnonzero(mask_np[:, t])
        if rows.size == 0:
            break
        pairs, pair_of_row = np.unique(prefix[rows] * vocab + actions_np[rows, t], return_inverse=True)
        pair_mean = np.bincount(pair_of_row, scores_np[rows]) / np.bincount(pair_of_row)
        _, bucket_of_pair = np.unique(pairs // vocab, return_inverse=True)
        high = np.full(bucket_of_pair.max() + 1, -np.inf)
        low = np.full_like(high, np.inf)
        np.maximum.at(high, bucket_of_pair, pair_mean)
        np.minimum.at(low, bucket_of_pair, pair_mean)
        forks[rows, t] = (high > low)[bucket_of_pair[pair_of_row]]  # > implies two tokens at least
        prefix = prefix.copy()
        prefix[rows] = pair_of_row  # each (prefix, token) pair is the next prefix
    return torch.as_tensor(forks, device=actions.device)


def _episode_forks(rollout: Rollout) -> torch.Tensor:
    if rollout.groups is None or torch.unique(rollout.groups).numel() == rollout.groups.numel():
        raise ValueError(
            "the group_fork weightings need groups of episodes: set group_size >= 2 (e.g. --algo grpo)"
        )
    scores = (rollout.rewards * rollout.mask).sum(dim=1)
    return group_forks(rollout.actions, rollout.mask, rollout.groups, scores)


@register_kl_weighting("group_fork", needs_groups=True)
def group_fork(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """0 at the group's forking decisions (:func:`group_forks`), 1 elsewhere."""
    return (~_episode_forks(rollout)).float()


@register_kl_weighting("group_fork_critical", needs_groups=True)
def group_fork_critical(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """``J^beta`` (the prioritized KL), and 0 at the group's forking decisions."""
    certainty = kl_weights("critical", rollout.certainty, config.beta, config.weight_floor)
    return certainty * (~_episode_forks(rollout)).float()


VALUE_JUMP_SHARE = 0.05
"""The share of played tokens whose KL ``value_jump`` lifts (a first choice, not tuned)."""


def value_jumps(rollout: Rollout) -> torch.Tensor:
    """``|r_t + V_{t+1} - V_t|`` per played token: how much the critic's estimate moves with it
    (the TD error, gamma 1; past an episode's end V is 0, so its last token jumps to the reward)."""
    mask = rollout.mask
    following = torch.zeros_like(rollout.values)
    following[:, :-1] = rollout.values[:, 1:] * mask[:, 1:]
    return (rollout.rewards + following - rollout.values).abs() * mask


@register_kl_weighting("value_jump", needs_critic=True)
def value_jump(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """0 on the :data:`VALUE_JUMP_SHARE` of tokens with the largest value jumps, 1 elsewhere."""
    return (~top_fraction(value_jumps(rollout), rollout.mask, VALUE_JUMP_SHARE)).float()

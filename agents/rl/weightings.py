"""The built-in KL weightings (the contract they implement is :mod:`agents.rl.weighting`).

The paper's: ``none`` (0), ``uniform`` (1, the standard KL), ``critical`` (J^beta, J the
reference's certainty, see :mod:`agents.kl`; with ``beta_share`` set, β is calibrated once on the
reference's own samples: ``critical_auto``, :mod:`agents.rl.calibration`) and
``oracle_critical`` (0 exactly on the tokens the env labels critical, 1 elsewhere: it knows the
template).

Beyond the paper, with no template: ``group_fork`` (0 where a group of episodes of one problem
forks with different rewards, :func:`group_forks`; 1 elsewhere), ``group_fork_critical`` (the
same times J^beta) and ``value_jump`` (0 on the tokens where the critic's estimate jumps most).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.kl import prioritized_weights
from agents.rl.calibration import calibrated_beta
from agents.rl.config import RLConfig
from agents.rl.weighting import TokenBatch, TrainingProblems, register_kl_weighting


def top_fraction(scores: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool [B, T]: the ``fraction`` of live tokens (at least one) with the highest ``scores``."""
    live = scores[mask]
    count = max(1, round(fraction * live.numel()))
    threshold = live.topk(count).values[-1]
    return (scores >= threshold) & mask


def calibrate_beta(reference: PreTrainedModel, config: RLConfig, problems: TrainingProblems) -> RLConfig:
    """``config`` with β calibrated on the reference's own samples when ``beta_share`` is set
    (``critical_auto``, :mod:`agents.rl.calibration`); unchanged otherwise."""
    if config.beta_share is None:
        return config
    beta = calibrated_beta(
        reference,
        problems,
        config.temperature,
        config.certainty_temperature,
        config.certainty_kind,
        config.beta_share,
    )
    return config.with_overrides(beta=beta)


# Their methods are in agents.rl.methods (``critical`` also fixes the certainty kind).
@register_kl_weighting("none", method=False, zero=True)
def none(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """0 everywhere: no KL penalty (the KL is not even computed)."""
    return torch.zeros(())


@register_kl_weighting("uniform", method=False)
def uniform(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """1 everywhere: the standard KL penalty."""
    return torch.ones(())


@register_kl_weighting("critical", needs=("certainty",), prepare=calibrate_beta, method=False)
def critical(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """The paper's prioritized KL: ``(1 - floor) J^beta + floor`` (:func:`agents.kl.prioritized_weights`)."""
    return prioritized_weights(batch.certainty, config.beta, config.weight_floor)


@register_kl_weighting("oracle_critical", needs=("critical",), method=False)
def oracle_critical(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """0 on the tokens the env labels critical, 1 elsewhere (an upper bound: it knows the template)."""
    return (~batch.critical).float()


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


def _episode_forks(batch: TokenBatch) -> torch.Tensor:
    if torch.unique(batch.groups).numel() == batch.groups.numel():
        raise ValueError(
            "the group_fork weightings need groups of episodes: set group_size >= 2 (e.g. --algo grpo)"
        )
    scores = (batch.rewards * batch.mask).sum(dim=1)
    return group_forks(batch.actions, batch.mask, batch.groups, scores)


@register_kl_weighting("group_fork", needs=("groups", "rewards"))
def group_fork(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """0 at the group's forking decisions (:func:`group_forks`), 1 elsewhere."""
    return (~_episode_forks(batch)).float()


@register_kl_weighting(
    "group_fork_critical", needs=("groups", "rewards", "certainty"), prepare=calibrate_beta
)
def group_fork_critical(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """``J^beta`` (the prioritized KL), and 0 at the group's forking decisions."""
    certainty = prioritized_weights(batch.certainty, config.beta, config.weight_floor)
    return certainty * (~_episode_forks(batch)).float()


VALUE_JUMP_SHARE = 0.05
"""The share of played tokens whose KL ``value_jump`` lifts (a first choice, not tuned)."""


def value_jumps(batch: TokenBatch) -> torch.Tensor:
    """``|r_t + V_{t+1} - V_t|`` per played token: how much the critic's estimate moves with it
    (the TD error, gamma 1; past an episode's end V is 0, so its last token jumps to the reward)."""
    mask = batch.mask
    following = torch.zeros_like(batch.values)
    following[:, :-1] = batch.values[:, 1:] * mask[:, 1:]
    return (batch.rewards + following - batch.values).abs() * mask


@register_kl_weighting("value_jump", needs=("values", "rewards"))
def value_jump(batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """0 on the :data:`VALUE_JUMP_SHARE` of tokens with the largest value jumps, 1 elsewhere."""
    return (~top_fraction(value_jumps(batch), batch.mask, VALUE_JUMP_SHARE)).float()

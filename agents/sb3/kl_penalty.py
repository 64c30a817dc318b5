"""The KL to the reference for SB3's algorithms, as a reward penalty, with any registered weighting.

SB3's ``train()`` has no hook for an extra loss term, and adding one means copying its
whole update loop (once for PPO, A2C and MaskablePPO each). So the penalty goes into the
reward instead, like ``kl_in="reward"`` of :mod:`agents.rl.update`: the :class:`KLRewardPenalty`
callback records, on every rollout step, the estimate ``KL`` (estimator ``kl_estimator``) of
KL(π ‖ π_ref) at the token just played and whatever the policy's KL weighting reads
(:mod:`agents.rl.weighting`: the reference's certainty, the policy's entropy, the critic's
values, the env's rewards and critical labels). When the rollout ends it lays the steps out as
episodes (one row per episode, or part of one, of each env), asks the weighting for ``w``,
subtracts ``kl_coef * w * KL`` from the rollout buffer's rewards and recomputes SB3's returns
and advantages. So a weighting that ranks tokens across the batch (``value_jump``, a plug-in's
top-k) sees the whole rollout, as in the agents trainer; SB3 plays one problem per episode, so
weightings that need groups of episodes are refused at start (:data:`SB3_BATCH_FIELDS`).

:class:`KLPPO`, :class:`KLA2C` and :class:`KLMaskablePPO` add that callback by themselves
whenever the policy's weighting is not ``none``; with the plain algorithms, pass
``callback=KLRewardPenalty()`` to ``learn``. The episode rewards SB3 logs (``ep_rew_mean``,
from ``Monitor``) stay the task's; the callback logs ``kl/*`` means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.utils import obs_as_tensor
from torch import nn

from agents.rl.weighting import KL_WEIGHTINGS, TokenBatch, compute_weights

SB3_BATCH_FIELDS = frozenset({"logp", "entropy", "ref_logp", "certainty", "rewards", "values", "critical"})
"""What an SB3 rollout gives a KL weighting (no groups: one problem per episode; no advantages:
SB3 computes them after the penalty)."""


def episode_rows(dones: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay a rollout's ``[steps, envs]`` grid out as episodes: one row per episode (or the part of
    one in this rollout) of each env. Returns ``(step, env)`` index arrays ``[R, L]`` and the mask
    ``[R, L]`` of the cells that hold a step (``dones[t, e]``: env ``e``'s episode ended at step t)."""
    steps, envs = dones.shape
    segments = []
    for env in range(envs):
        start = 0
        for end in [*np.flatnonzero(dones[:, env]) + 1, steps]:
            if end > start:
                segments.append((env, start, end))
            start = end
    width = max(end - start for _, start, end in segments)
    step_index = np.zeros((len(segments), width), dtype=np.int64)
    env_index = np.zeros_like(step_index)
    mask = np.zeros(step_index.shape, dtype=bool)
    for row, (env, start, end) in enumerate(segments):
        step_index[row, : end - start] = np.arange(start, end)
        env_index[row] = env
        mask[row, : end - start] = True
    return step_index, env_index, mask


class KLRewardPenalty(BaseCallback):
    """Takes the policy's ``kl_coef * w * KL`` off each step's reward when a rollout ends.

    Works with PPO, A2C and MaskablePPO (it edits the rollout buffer's ``rewards`` and recomputes
    its returns and advantages). Logs the means ``kl/estimate``, ``kl/weight`` and ``kl/penalty``.
    """

    def _on_rollout_start(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def _on_step(self) -> bool:
        policy = self.model.policy
        if KL_WEIGHTINGS[getattr(policy, "kl_weighting", "none")].zero:
            return True
        recorded = policy.kl_terms(
            self.locals["obs_tensor"],
            self.locals["actions"],
            self.locals.get("log_probs"),
            self.locals.get("action_masks"),
        )
        needs = KL_WEIGHTINGS[policy.kl_weighting].needs
        if "values" in needs:
            recorded["values"] = self.locals["values"].detach().reshape(-1).float()
        if "rewards" in needs:
            recorded["rewards"] = torch.as_tensor(np.array(self.locals["rewards"], dtype=np.float32))
        if "critical" in needs:
            infos = self.locals["infos"]
            recorded["critical"] = torch.tensor([info.get("critical") is not None for info in infos])
        recorded["dones"] = torch.as_tensor(np.array(self.locals["dones"], dtype=bool))
        self.steps.append(recorded)
        return True

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        if KL_WEIGHTINGS[getattr(policy, "kl_weighting", "none")].zero or not self.steps:
            return
        grid = {name: torch.stack([step[name].cpu() for step in self.steps]) for name in self.steps[0]}
        step_index, env_index, mask = episode_rows(grid.pop("dones").numpy())
        rows = {name: values[step_index, env_index] for name, values in grid.items()}
        kl = rows.pop("kl")
        mask_t = torch.as_tensor(mask)
        rows["actions"] = rows["actions"].long()
        batch = TokenBatch("SB3", mask=mask_t, **rows)
        weights = compute_weights(policy.kl_weighting, batch, policy.weighting_config)
        penalty = policy.kl_coef * weights * kl * mask_t
        buffer = self.model.rollout_buffer
        penalty_grid = np.zeros(buffer.rewards.shape, dtype=buffer.rewards.dtype)
        penalty_grid[step_index[mask], env_index[mask]] = penalty[mask_t].numpy()
        buffer.rewards -= penalty_grid
        with torch.no_grad():
            last_values = policy.predict_values(obs_as_tensor(self.model._last_obs, self.model.device))
        buffer.compute_returns_and_advantage(last_values=last_values, dones=self.steps[-1]["dones"].numpy())
        live = mask_t.sum().clamp(min=1)
        self.logger.record("kl/estimate", float((kl * mask_t).sum() / live))
        self.logger.record("kl/weight", float((weights * mask_t).sum() / live))
        self.logger.record("kl/penalty", float(penalty.sum() / live))


def with_kl_penalty(policy: nn.Module, callback: Any = None) -> Any:
    """``callback`` with :class:`KLRewardPenalty` in front, if ``policy``'s KL weighting is not none."""
    if KL_WEIGHTINGS[getattr(policy, "kl_weighting", "none")].zero:
        return callback
    if callback is None:
        callbacks = []
    elif isinstance(callback, list):
        callbacks = list(callback)
    elif isinstance(callback, BaseCallback):
        callbacks = [callback]
    else:
        callbacks = [ConvertCallback(callback)]
    return [KLRewardPenalty(), *callbacks]


class _KLLearnMixin:
    def learn(self, total_timesteps: int, callback: Any = None, **kwargs: Any):
        """SB3's ``learn`` (keyword arguments only after ``callback``), with the KL reward penalty."""
        return super().learn(total_timesteps, callback=with_kl_penalty(self.policy, callback), **kwargs)


class KLPPO(_KLLearnMixin, PPO):
    """``PPO`` that applies the LM policy's KL penalty (:class:`KLRewardPenalty`) by itself."""


class KLA2C(_KLLearnMixin, A2C):
    """``A2C`` that applies the LM policy's KL penalty (:class:`KLRewardPenalty`) by itself."""


class KLMaskablePPO(_KLLearnMixin, MaskablePPO):
    """``MaskablePPO`` that applies the LM policy's KL penalty (:class:`KLRewardPenalty`) by itself."""

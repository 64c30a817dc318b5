"""The KL to the reference for SB3's algorithms, as a reward penalty.

SB3's ``train()`` has no hook for an extra loss term, and adding one means copying its
whole update loop (once for PPO, A2C and MaskablePPO each). So the penalty goes into the
reward instead, like ``kl_in="reward"`` of :mod:`agents.rl.update`: on every rollout step the
:class:`KLRewardPenalty` callback subtracts ``kl_coef * w * KL`` of the token just played
from that step's reward, with ``KL`` the estimator ``kl_estimator`` of KL(π ‖ π_ref) and
``w = kl_weights(kl_weighting, J, beta)``, ``J`` the reference's certainty at
``certainty_temperature`` (see :mod:`agents.kl`). :class:`KLPPO`, :class:`KLA2C` and
:class:`KLMaskablePPO` add that callback by themselves whenever the policy's
``kl_weighting`` is not ``"none"``; with the plain algorithms, pass
``callback=KLRewardPenalty()`` to ``learn``. The episode rewards SB3 logs (``ep_rew_mean``,
from ``Monitor``) stay the task's; the callback logs ``kl/*`` means. The penalty costs one
reference forward per step (plus one policy forward for the ``"full"`` estimator).
"""

from __future__ import annotations

from typing import Any

from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from torch import nn


class KLRewardPenalty(BaseCallback):
    """On every rollout step, takes the policy's ``kl_coef * w * KL`` off that step's reward.

    Works with PPO, A2C and MaskablePPO (it edits the ``rewards`` array of
    ``collect_rollouts`` in place, before it goes into the rollout buffer). Logs the means
    ``kl/estimate``, ``kl/weight`` and ``kl/penalty``.
    """

    def _on_step(self) -> bool:
        policy = self.model.policy
        if getattr(policy, "kl_weighting", "none") == "none":
            return True
        kl, weights = policy.kl_terms(
            self.locals["obs_tensor"],
            self.locals["actions"],
            self.locals.get("log_probs"),
            self.locals.get("action_masks"),
        )
        penalty = policy.kl_coef * weights * kl
        self.locals["rewards"] -= penalty.cpu().numpy().astype(self.locals["rewards"].dtype)
        self.logger.record_mean("kl/estimate", float(kl.mean()))
        self.logger.record_mean("kl/weight", float(weights.mean()))
        self.logger.record_mean("kl/penalty", float(penalty.mean()))
        return True


def with_kl_penalty(policy: nn.Module, callback: Any = None) -> Any:
    """``callback`` with :class:`KLRewardPenalty` in front, if ``policy``'s KL weighting is not none."""
    if getattr(policy, "kl_weighting", "none") == "none":
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

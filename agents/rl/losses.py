"""Policy losses (per token) and the ways of aggregating a ``[b, T]`` loss into one number.

A policy loss maps :class:`PolicyLossInputs` (the new and the sampling-time log-probs of the
played tokens, their advantages and the clip range) to a per-token loss and the tokens whose
gradient the clip removed. An aggregation turns the per-token loss of a minibatch (the policy
loss plus the KL, entropy and value terms) into the scalar that is differentiated.

Register your own with :func:`register_policy_loss` / :func:`register_loss_aggregation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from agents.rl.registry import Registry


@dataclass(frozen=True)
class PolicyLossInputs:
    """``[b, T]`` tensors of one minibatch, and the clip range ``[1 - clip_low, 1 + clip_high]``."""

    new_logp: torch.Tensor  # log pi_theta(a_t), with gradient
    old_logp: torch.Tensor  # log pi_old(a_t), at sampling time
    advantages: torch.Tensor
    mask: torch.Tensor  # bool: the tokens played
    clip_low: float = 0.2
    clip_high: float = 0.2


@dataclass(frozen=True)
class PolicyLoss:
    """The per-token loss ``[b, T]`` and where the clip removed the gradient (bool ``[b, T]``)."""

    loss: torch.Tensor
    clipped: torch.Tensor


POLICY_LOSSES: Registry[Callable[[PolicyLossInputs], PolicyLoss]] = Registry("policy loss")
LOSS_AGGREGATIONS: Registry[Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = Registry(
    "loss aggregation"
)


def register_policy_loss(name: str) -> Callable:
    """Decorator: register ``fn(inputs: PolicyLossInputs) -> PolicyLoss`` as policy loss ``name``."""
    return POLICY_LOSSES.decorator(name)


def register_loss_aggregation(name: str) -> Callable:
    """Decorator: register ``fn(loss [b, T], mask [b, T], length_norm) -> scalar`` as ``name``."""
    return LOSS_AGGREGATIONS.decorator(name)


def clipped_surrogate(ratio: torch.Tensor, inputs: PolicyLossInputs) -> PolicyLoss:
    """``-min(ratio A, clip(ratio, 1 - low, 1 + high) A)`` per token, and where the clip wins."""
    adv = inputs.advantages
    bounded = torch.clamp(ratio, 1 - inputs.clip_low, 1 + inputs.clip_high)
    unclipped, clipped = ratio * adv, bounded * adv
    return PolicyLoss(-torch.min(unclipped, clipped), (clipped < unclipped) & inputs.mask)


@register_policy_loss("ppo_clip")
def ppo_clip(inputs: PolicyLossInputs) -> PolicyLoss:
    """PPO's clipped surrogate on the token ratio ``exp(log pi - log pi_old)`` (asymmetric if
    ``clip_high != clip_low``: DAPO's clip-higher)."""
    return clipped_surrogate((inputs.new_logp - inputs.old_logp).exp(), inputs)


@register_policy_loss("vanilla")
def vanilla(inputs: PolicyLossInputs) -> PolicyLoss:
    """The plain policy gradient ``-A log pi(a)`` (A2C, REINFORCE): no ratio, no clip."""
    return PolicyLoss(-inputs.advantages * inputs.new_logp, torch.zeros_like(inputs.mask))


@register_policy_loss("gspo")
def gspo(inputs: PolicyLossInputs) -> PolicyLoss:
    """GSPO (Zheng et al. 2025): one length-normalised ratio per episode,
    ``s_i = exp(mean_t (log pi - log pi_old))``, clipped like PPO's.

    Each token carries ``sg(s_i) * pi(a_t) / sg(pi(a_t))`` (value ``s_i``), so that with a
    per-episode token mean its gradient is exactly that of ``s_i``; an episode of one token
    is PPO's clip.
    """
    log_ratio = (inputs.new_logp - inputs.old_logp) * inputs.mask
    lengths = inputs.mask.sum(dim=1).clamp(min=1)
    log_sequence_ratio = log_ratio.sum(dim=1) / lengths
    ratio = (log_sequence_ratio.detach()[:, None] + inputs.new_logp - inputs.new_logp.detach()).exp()
    return clipped_surrogate(ratio, inputs)


@register_policy_loss("cispo")
def cispo(inputs: PolicyLossInputs) -> PolicyLoss:
    """CISPO (MiniMax-M1, 2025): ``-sg(clip(ratio, 1 - low, 1 + high)) A log pi(a)``: the
    importance weight is clipped and detached, so no token loses its gradient."""
    ratio = (inputs.new_logp - inputs.old_logp).exp().detach()
    weight = torch.clamp(ratio, 1 - inputs.clip_low, 1 + inputs.clip_high)
    return PolicyLoss(-weight * inputs.advantages * inputs.new_logp, (weight != ratio) & inputs.mask)


# --------------------------------------------------------------------------- aggregation


@register_loss_aggregation("token_mean")
def token_mean(loss: torch.Tensor, mask: torch.Tensor, length_norm: float) -> torch.Tensor:
    """Mean over every played token of the minibatch (DAPO; PPO here): long episodes weigh more."""
    return (loss * mask).sum() / mask.sum().clamp(min=1)


@register_loss_aggregation("seq_mean_token_mean")
def seq_mean_token_mean(loss: torch.Tensor, mask: torch.Tensor, length_norm: float) -> torch.Tensor:
    """Mean over episodes of each episode's token mean (GRPO): every episode weighs the same."""
    per_episode = (loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_episode.mean()


@register_loss_aggregation("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(loss: torch.Tensor, mask: torch.Tensor, length_norm: float) -> torch.Tensor:
    """Mean over episodes of each episode's token sum divided by one constant length (Dr. GRPO):
    no length bias either way."""
    return ((loss * mask).sum(dim=1) / length_norm).mean()

"""One policy update on a batch of LM episodes, with a per-token weighted KL to the reference.

Read top to bottom, in the manner of CleanRL's ``ppo.py``:

1. the per-token KL weights (:mod:`agents.rl.weightings`) and the per-token rewards (the env's
   outcome reward, minus the weighted KL if the KL goes in the reward);
2. the advantages, from the config's estimator (:mod:`agents.rl.advantages`: GAE with the
   critic, or a group estimator such as GRPO's);
3. epochs x minibatches of episodes: re-run the policy on whole sequences, then the config's
   policy loss (:mod:`agents.rl.losses`: PPO's clip, the plain policy gradient, GSPO, CISPO),
   the value loss (critic estimators only), the entropy bonus and the weighted KL term, each per
   token, aggregated into one number the config's way; one optimizer step per minibatch with
   gradient clipping.

The KL weight of each token is the config's registered weighting: 1 everywhere for the standard
KL, J**beta for the paper's prioritized KL, 0 for none, 0 exactly on the env's critical tokens
for ``oracle_critical``.

Exploration baselines (see :mod:`agents.rl.methods`) hook in at two places: ``pg_tokens="entropy_topk"``
restricts the policy gradient to the batch's highest-entropy tokens, and ``kl_cov_fraction > 0``
adds KL-Cov's ``|log pi - log pi_old|`` penalty on the tokens with the largest covariance between
log-prob and advantage. Asymmetric clipping (DAPO's clip-higher) is ``clip_coef_high``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import pad

from agents.kl import NonFiniteError, kl_estimate
from agents.rl.advantages import AdvantageInputs, Advantages
from agents.rl.algorithms import Pieces, check_config
from agents.rl.config import RLConfig
from agents.rl.losses import LOSS_AGGREGATIONS, POLICY_LOSSES, PolicyLossInputs
from agents.rl.policy import LMPolicy
from agents.rl.rollout import Rollout, episode_chunks
from agents.rl.weighting import KL_WEIGHTINGS, TokenBatch, compute_weights
from agents.rl.weightings import top_fraction


def check_finite(term: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Raise :class:`~agents.kl.NonFiniteError` naming ``term`` if a live value is NaN or infinite:
    the update stops before ``optimizer.step``, so the weights (and the last checkpoint) stay."""
    live = values.detach() if mask is None else values.detach()[mask.bool()]
    if not torch.isfinite(live).all():
        raise NonFiniteError(f"non-finite {term} (NaN or inf) before the optimizer step")


@dataclass
class KLController:
    """The KL coefficient: fixed, or adapted towards a target KL (Ziegler et al., 2019)."""

    coef: float
    target: float | None = None
    horizon: int = 10000

    def update(self, observed_kl: float, episodes: int) -> None:
        if self.target is None:
            return
        error = float(np.clip(observed_kl / self.target - 1.0, -0.2, 0.2))
        self.coef *= 1.0 + error * episodes / self.horizon


def policy_gradient_tokens(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """Float [B, T]: which tokens the policy gradient covers (``entropy_topk``: high-entropy forks only)."""
    if config.pg_tokens == "entropy_topk":
        return top_fraction(rollout.entropy, rollout.mask, config.entropy_top_fraction).float()
    return rollout.mask.float()


def kl_cov_tokens(new_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, fraction: float):
    """Bool: KL-Cov's tokens, the ``fraction`` with the largest cov(log pi, advantage) terms."""
    live_logp, live_adv = new_logp.detach()[mask], adv[mask]
    covariance = (new_logp.detach() - live_logp.mean()) * (adv - live_adv.mean())
    return top_fraction(covariance, mask, fraction)


def token_batch(
    rollout: Rollout, needs: frozenset[str], advantages: torch.Tensor | None = None
) -> TokenBatch:
    """The :class:`~agents.rl.weighting.TokenBatch` a weighting that ``needs`` those fields sees of
    ``rollout`` (``advantages``: before any KL, given only where the KL is a loss term)."""
    available = {
        "logp": rollout.logp,
        "entropy": rollout.entropy,
        "ref_logp": rollout.ref_logp,
        "certainty": rollout.certainty,
        "rewards": rollout.rewards,
        "groups": rollout.groups,
        "values": rollout.values,
        "critical": rollout.critical,
        "advantages": advantages,
    }
    given = {name: available[name] for name in needs if available.get(name) is not None}
    return TokenBatch("agents", mask=rollout.mask, actions=rollout.actions, **given)


def token_kl_weights(
    rollout: Rollout, config: RLConfig, advantages: torch.Tensor | None = None
) -> torch.Tensor:
    """The weights ``[B, T]`` of ``config.kl_weighting`` on ``rollout``, 0 off its mask."""
    needs = KL_WEIGHTINGS[config.kl_weighting].needs
    weights = compute_weights(config.kl_weighting, token_batch(rollout, needs, advantages), config)
    return weights.to(rollout.logp.dtype)


def estimate_advantages(
    rollout: Rollout, rewards: torch.Tensor, config: RLConfig, pieces: Pieces
) -> Advantages:
    """The config's advantage estimator on ``rollout`` with per-token ``rewards``."""
    inputs = AdvantageInputs(
        rewards,
        rollout.mask,
        rollout.values,
        rollout.groups,
        config.gamma,
        config.gae_lambda,
        config.normalize_advantages,
    )
    return pieces.estimator.fn(inputs)


def weights_and_advantages(
    rollout: Rollout, config: RLConfig, pieces: Pieces, kl_coef: float
) -> tuple[torch.Tensor, Advantages]:
    """The KL weights and the advantages of an update, in the order their dependence dictates.

    A KL in the reward shapes the rewards with the weights before the advantages are estimated;
    a weighting that reads the advantages (allowed only with the KL in the loss, checked at start)
    gets them from the env's rewards first.
    """
    if "advantages" in KL_WEIGHTINGS[config.kl_weighting].needs:
        estimated = estimate_advantages(rollout, rollout.rewards, config, pieces)
        return token_kl_weights(rollout, config, estimated.advantages * rollout.mask), estimated
    weights = token_kl_weights(rollout, config)
    return weights, estimate_advantages(
        rollout, shaped_rewards(rollout, weights, config, kl_coef), config, pieces
    )


def shaped_rewards(rollout: Rollout, weights: torch.Tensor, config: RLConfig, kl_coef: float) -> torch.Tensor:
    """Env rewards, minus ``kl_coef * w * KL`` per token when the KL goes in the reward."""
    rewards = rollout.rewards.clone()
    if config.kl_in == "reward" and not KL_WEIGHTINGS[config.kl_weighting].zero:
        kl = kl_estimate(
            config.kl_estimator, rollout.logp, rollout.ref_logp, rollout.log_probs, rollout.ref_log_probs
        )
        rewards -= kl_coef * weights * kl * rollout.mask
    return rewards


def policy_forward(policy: LMPolicy, rollout: Rollout, rows: torch.Tensor, rows_per_forward: int = 8):
    """Tempered log-probs [b, T, V] and values [b, T] of the policy at every generated token of ``rows``.

    Episodes run in chunks of similar length (:func:`~agents.rl.rollout.episode_chunks`), each
    cut to its longest episode (past it the log-probs are uniform and the values 0; whatever
    lies past an episode's end is masked out, as before). The outputs equal one forward over
    all rows up to float rounding (tested), at about the cost of the tokens actually played.
    """
    steps, vocab = rollout.actions.shape[1], rollout.log_probs.shape[-1]
    order, log_probs, values = [], [], []
    for chunk, length, (input_ids, attention, positions, width) in episode_chunks(
        rollout, rows, rows_per_forward
    ):
        out = policy(input_ids, attention, positions)
        # The output at the last prompt token predicts action 0, and so on.
        log_probs.append(
            pad(
                policy.log_probs(out.logits[:, width - 1 :]),
                (0, 0, 0, steps - length),
                value=-math.log(vocab),
            )
        )
        values.append(pad(out.values[:, width - 1 :].float(), (0, steps - length)))
        order.append(chunk)
    back = torch.cat(order).argsort()  # chunk order -> the order of ``rows``
    return torch.cat(log_probs)[back], torch.cat(values)[back]


def policy_update(
    policy: LMPolicy,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: RLConfig,
    kl: KLController,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One update (all epochs and minibatches) on a scored ``rollout``; returns mean statistics."""
    pieces = check_config(config)
    weights, estimated = weights_and_advantages(rollout, config, pieces, kl.coef)
    kl_in_loss = config.kl_in == "loss" and not KL_WEIGHTINGS[config.kl_weighting].zero
    pg_tokens = policy_gradient_tokens(rollout, config)
    mask = rollout.mask
    advantages, returns = estimated.advantages * mask, estimated.returns
    check_finite(f"KL weights (kl_weighting {config.kl_weighting!r})", weights, mask)
    check_finite("advantages", advantages, mask)
    policy_loss = POLICY_LOSSES[pieces.policy_loss]
    aggregate = LOSS_AGGREGATIONS[pieces.loss_agg]
    length_norm = config.loss_length_norm or float(rollout.max_steps or mask.shape[1])

    clip_low = config.clip_coef
    clip_high = config.clip_coef if config.clip_coef_high is None else config.clip_coef_high
    episodes = rollout.actions.shape[0]
    history: dict[str, list[float]] = {}
    for epoch in range(config.update_epochs):
        order = torch.randperm(episodes, generator=generator, device="cpu").to(mask.device)
        for minibatch, rows in enumerate(order.chunk(config.minibatches)):
            log_probs, values = policy_forward(policy, rollout, rows)
            m = mask[rows]
            new_logp = log_probs.gather(-1, rollout.actions[rows, :, None]).squeeze(-1)
            log_ratio = new_logp - rollout.logp[rows]
            ratio = log_ratio.exp()
            adv = advantages[rows]

            surrogate = policy_loss(
                PolicyLossInputs(new_logp, rollout.logp[rows], adv, m, clip_low, clip_high)
            )
            pg_loss = surrogate.loss * pg_tokens[rows]
            if config.kl_cov_fraction > 0:
                selected = kl_cov_tokens(new_logp, adv, m, config.kl_cov_fraction)
                pg_loss = pg_loss + config.kl_cov_coef * log_ratio.abs() * selected
            entropy = -(log_probs.exp() * log_probs).sum(-1)
            token_kl = kl_estimate(
                config.kl_estimator, new_logp, rollout.ref_logp[rows], log_probs, rollout.ref_log_probs[rows]
            )
            loss_terms = pg_loss
            if returns is not None:  # only a critic's estimator trains the value head
                value_loss = 0.5 * (values - returns[rows]) ** 2
                loss_terms = loss_terms + config.value_coef * value_loss
            loss_terms = loss_terms - config.entropy_coef * entropy
            if kl_in_loss:
                loss_terms = loss_terms + kl.coef * weights[rows] * token_kl
            loss = aggregate(loss_terms, m, length_norm)
            # The first non-finite term is named; nothing is stepped (a NaN step would poison every
            # weight, and the next checkpoint would overwrite the last good one).
            check_finite("policy loss", pg_loss, m)
            if returns is not None:
                check_finite("value loss", value_loss, m)
            check_finite("entropy", entropy, m)
            check_finite(f"KL ({config.kl_estimator})", token_kl, m)
            check_finite("loss", loss)

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            check_finite("gradient norm", grad_norm)
            optimizer.step()

            with torch.no_grad():
                stats = {
                    "loss": loss.item(),
                    "pg_loss": _masked_mean(pg_loss, m).item(),
                    "entropy": _masked_mean(entropy, m).item(),
                    "kl": _masked_mean(token_kl, m).item(),
                    "weighted_kl": _masked_mean(weights[rows] * token_kl, m).item(),
                    "approx_kl": _masked_mean((ratio - 1) - log_ratio, m).item(),
                    "clip_fraction": _masked_mean(surrogate.clipped.float(), m).item(),
                    "grad_norm": float(grad_norm),
                }
                if returns is not None:
                    stats["value_loss"] = _masked_mean(value_loss, m).item()
                if epoch == 0 and minibatch == 0:  # before any step: must be the rollout's policy
                    stats["first_ratio_max_error"] = (ratio - 1).abs()[m].max().item()
            for key, value in stats.items():
                history.setdefault(key, []).append(value)

    summary = {key: float(np.mean(values)) for key, values in history.items()}
    summary["mean_kl_weight"] = _masked_mean(weights, mask).item()
    summary["kl_coef"] = kl.coef
    summary["zero_advantage_share"] = _masked_mean((advantages == 0).float(), mask).item()
    kl.update(summary["kl"], episodes)
    return summary


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)

"""Calibrated β (``critical_auto``): the prioritized KL's exponent chosen from the reference alone.

The rule, in one sentence: **β is the value at which a fixed share q of the tokens the reference
samples on the RL split get a KL weight J^β below one half.** With ``u = -log J`` per token,
``J^β < 1/2`` iff ``u > log 2 / β``, so ``β = log 2 / quantile_{1-q}(u)``. It needs no labels and
no template: only the reference's certainty on its own samples. q is fixed once (on the N = 3
reference) and then applied unchanged to other references.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.kl import MAX_BETA
from agents.lm.episodes import make_vector_env
from agents.rl.policy import LMPolicy
from agents.rl.rollout import collect_rollout
from arith_gym.task import get_task

if TYPE_CHECKING:
    from agents.rl.weighting import TrainingProblems


def beta_for_share(certainty: np.ndarray | torch.Tensor, share: float) -> float:
    """The β at which a ``share`` of the tokens whose certainty is ``certainty`` get ``J^β < 1/2``.

    Raises:
        ValueError: ``share`` outside (0, 1), no tokens, or certainties outside [0, 1].
    """
    j = np.asarray(certainty.cpu() if isinstance(certainty, torch.Tensor) else certainty, dtype=np.float64)
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if j.size == 0 or np.isnan(j).any() or (j < 0).any() or (j > 1).any():
        raise ValueError("certainty must be a non-empty array of values in [0, 1]")
    uncertainty = -np.log(np.clip(j, np.finfo(np.float64).tiny, 1.0))
    # "higher": the share of tokens strictly above the threshold never exceeds ``share``.
    threshold = float(np.quantile(uncertainty, 1.0 - share, method="higher"))
    if threshold <= 0.0:  # the reference is sure (J = 1) of more than 1 - share of... all tokens
        return MAX_BETA
    return min(MAX_BETA, math.log(2.0) / threshold)


@torch.no_grad()
def reference_certainties(
    reference: PreTrainedModel,
    problems: TrainingProblems,
    temperature: float,
    certainty_temperature: float,
    certainty_kind: str,
    episodes: int = 256,
    seed: int = 0,
) -> torch.Tensor:
    """The reference's certainty J at every token of ``episodes`` episodes it samples itself on
    training ``problems`` (a 1-D tensor)."""
    vocab_size = get_task(problems.task).vocab_size if problems.codec is None else problems.codec.vocab_size
    policy = LMPolicy(reference, temperature, value_hidden=(1,), vocab_size=vocab_size).eval()
    env = make_vector_env(
        episodes, problems.comfort_digits, problems.split, problems.task, problems.codec, problem_set="train"
    )
    operands = problems.draw(episodes, seed)
    generator = torch.Generator(device=next(reference.parameters()).device).manual_seed(seed)
    rollout = collect_rollout(
        policy,
        reference,
        env,
        generator,
        seed=seed,
        certainty_temperature=certainty_temperature,
        certainty_kind=certainty_kind,
        options={"operands": operands},
    )
    env.close()
    return rollout.certainty[rollout.mask]


def calibrated_beta(
    reference: PreTrainedModel,
    problems: TrainingProblems,
    temperature: float,
    certainty_temperature: float,
    certainty_kind: str,
    share: float,
    episodes: int = 256,
    seed: int = 0,
) -> float:
    """:func:`beta_for_share` of the reference's certainties on its own samples (see the module)."""
    j = reference_certainties(
        reference, problems, temperature, certainty_temperature, certainty_kind, episodes, seed
    )
    return beta_for_share(j, share)

"""An arith-gym plug-in: a KL weighting and an algorithm of your own, registered by name.

Run it with::

    arith-rl train --plugin examples/plugins/entropy_lift.py --algo sign_grpo \
        --method entropy_lift --out runs/mine
    arith-rl compare --plugin examples/plugins/entropy_lift.py --algos grpo,sign_grpo \
        --methods uniform,entropy_lift
    arith-rl train --plugin examples/plugins/entropy_lift.py --algo trl-grpo \
        --method entropy_lift --out runs/mine-trl

``compare`` loads this file again in every worker process (and Ray worker), so the names below
exist wherever a run trains.

- ``entropy_lift`` (a KL weighting, and a method of the same name): no KL on the 20 % of played
  tokens where the policy was most uncertain when it sampled them (its entropy, which it
  declares in ``needs`` so that every backend computes it: agents, SB3 and TRL), the standard
  KL elsewhere. Like the paper's prioritized KL it frees the forks, but it asks the policy,
  not the reference, where they are.
- ``sign_grpo`` (an advantage estimator and an algorithm): ``A_i = sign(r_i - mean_g r)``, GRPO's
  group baseline with every informative episode counted alike.
"""

import torch

from agents.rl import (
    AdvantageInputs,
    Advantages,
    register_advantage,
    register_algorithm,
    register_kl_weighting,
)
from agents.rl.advantages import group_mean_std, outcome_scores, spread
from agents.rl.weightings import top_fraction

LIFTED_SHARE = 0.2


@register_kl_weighting("entropy_lift", needs=("entropy",))
def entropy_lift(batch, config) -> torch.Tensor:
    """0 on the top-20 % policy-entropy tokens of the batch, 1 elsewhere."""
    return (~top_fraction(batch.entropy, batch.mask, LIFTED_SHARE)).float()


@register_advantage("sign_grpo", needs_groups=True)
def sign_grpo(inputs: AdvantageInputs) -> Advantages:
    """``A_i = sign(r_i - mean_g r)`` on every token of episode i."""
    scores = outcome_scores(inputs)
    mean, _, _ = group_mean_std(scores, inputs.groups)
    return Advantages(spread(torch.sign(scores - mean), inputs.mask))


register_algorithm("sign_grpo", "sign_grpo", "ppo_clip", "seq_mean_token_mean", 8, kl_estimator="k3")

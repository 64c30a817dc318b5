"""agents.rl: RL fine-tuning of a reference LM on arith_gym, with a per-token weighted KL.

- :mod:`~agents.rl.config`: :class:`RLConfig` (one frozen dataclass) and its presets;
- :mod:`~agents.rl.registry`: the registries and the plug-in loader;
- :mod:`~agents.rl.advantages`, :mod:`~agents.rl.losses`: the registered pieces (advantage
  estimators; policy losses and aggregations);
- :mod:`~agents.rl.weighting`: the KL weighting contract and registry, the built-ins in
  :mod:`~agents.rl.weightings` (imported here, so they are registered);
- :mod:`~agents.rl.algorithms`: named algorithms (PPO, GRPO, ...) built from those pieces;
- :mod:`~agents.rl.methods`: named exploration methods (settings on top of a preset);
- :mod:`~agents.rl.policy`: the LM as an actor-critic;
- :mod:`~agents.rl.rollout`: a batch of KV-cached episodes in the vector env;
- :mod:`~agents.rl.sampling`: groups of episodes per problem, DAPO's dynamic sampling;
- :mod:`~agents.rl.update`: one policy update with the weighted KL;
- :mod:`~agents.rl.bookkeeping`: a run directory's record, shared by every backend;
- :mod:`~agents.rl.trainer`: the loop (evaluate, log, checkpoint, resume).
"""

from agents.rl import weightings as _built_in_weightings  # noqa: F401 -- registers them
from agents.rl.advantages import ADVANTAGES, AdvantageInputs, Advantages, register_advantage
from agents.rl.algorithms import ALGORITHMS, apply_algorithm, check_config, register_algorithm
from agents.rl.config import PRESETS, RLConfig
from agents.rl.losses import (
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    PolicyLoss,
    PolicyLossInputs,
    register_loss_aggregation,
    register_policy_loss,
)
from agents.rl.methods import METHODS, apply_method, beta_sweep, method_settings, register_method
from agents.rl.policy import LMPolicy, value_mlp
from agents.rl.registry import load_plugin
from agents.rl.rollout import Rollout, collect_rollout
from agents.rl.sampling import derived_seed, sample_batch
from agents.rl.trainer import Trainer, open_trainer, train
from agents.rl.update import KLController, policy_update
from agents.rl.weighting import KL_WEIGHTINGS, KLWeighting, TokenBatch, register_kl_weighting

__all__ = [
    "ADVANTAGES",
    "ALGORITHMS",
    "KL_WEIGHTINGS",
    "LOSS_AGGREGATIONS",
    "METHODS",
    "POLICY_LOSSES",
    "PRESETS",
    "AdvantageInputs",
    "Advantages",
    "KLController",
    "KLWeighting",
    "LMPolicy",
    "PolicyLoss",
    "PolicyLossInputs",
    "RLConfig",
    "Rollout",
    "TokenBatch",
    "Trainer",
    "apply_algorithm",
    "apply_method",
    "beta_sweep",
    "check_config",
    "collect_rollout",
    "derived_seed",
    "load_plugin",
    "method_settings",
    "open_trainer",
    "policy_update",
    "register_advantage",
    "register_algorithm",
    "register_kl_weighting",
    "register_loss_aggregation",
    "register_method",
    "register_policy_loss",
    "sample_batch",
    "train",
    "value_mlp",
]

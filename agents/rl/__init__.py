"""agents.rl: RL fine-tuning of a reference LM on arith_gym, with a per-token weighted KL.

- :mod:`~agents.rl.config`: :class:`RLConfig` (one frozen dataclass) and its presets;
- :mod:`~agents.rl.methods`: named exploration methods (settings on top of a preset);
- :mod:`~agents.rl.policy`: the LM as an actor-critic;
- :mod:`~agents.rl.rollout`: a batch of KV-cached episodes in the vector env;
- :mod:`~agents.rl.ppo`: one PPO / A2C update with the weighted KL;
- :mod:`~agents.rl.trainer`: the loop (evaluate, log, checkpoint, resume).
"""

from agents.rl.config import ALGOS, KL_WEIGHTINGS, PRESETS, RLConfig
from agents.rl.methods import METHODS, apply_method, beta_sweep, method_settings
from agents.rl.policy import LMPolicy, value_mlp
from agents.rl.ppo import KLController, gae, ppo_update
from agents.rl.rollout import Rollout, collect_rollout
from agents.rl.trainer import Trainer, derived_seed, open_trainer, train

__all__ = [
    "ALGOS",
    "KL_WEIGHTINGS",
    "METHODS",
    "PRESETS",
    "KLController",
    "LMPolicy",
    "RLConfig",
    "Rollout",
    "Trainer",
    "apply_method",
    "beta_sweep",
    "collect_rollout",
    "derived_seed",
    "gae",
    "method_settings",
    "open_trainer",
    "ppo_update",
    "train",
    "value_mlp",
]

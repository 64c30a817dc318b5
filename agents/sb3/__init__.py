"""agents.sb3: Stable-Baselines3 on ``arith_gym/Addition-v0``, with a pre-trained LM as the policy.

With these policies ``stable_baselines3.PPO`` / ``A2C`` and ``sb3_contrib.MaskablePPO``
fine-tune a language model on the token-level environment::

    from stable_baselines3 import PPO
    from agents.sb3 import LMActorCriticPolicy, make_sb3_env

    env = make_sb3_env(comfort_digits=3, split="plus1", n_envs=8)
    model = PPO(LMActorCriticPolicy, env, n_steps=256, batch_size=256, learning_rate=1e-5,
                policy_kwargs=dict(lm_path="path/to/reference-model"))
    model.learn(100_000)

- :mod:`~agents.sb3.env`: the SB3 ``VecEnv`` (and :class:`ForbidPad` action masks);
- :mod:`~agents.sb3.policy`: :class:`LMActorCriticPolicy` and its maskable twin;
- :mod:`~agents.sb3.kl_penalty`: the KL to the reference as a reward penalty (:class:`KLPPO`, ...);
- :mod:`~agents.sb3.train`: :func:`train_sb3`, an SB3 run from an ``RLConfig`` (``compare --algos sb3-ppo``).
"""

from agents.sb3.env import ForbidPad, make_sb3_env
from agents.sb3.kl_penalty import KLA2C, KLPPO, KLMaskablePPO, KLRewardPenalty, with_kl_penalty
from agents.sb3.policy import LMActorCriticPolicy, MaskableLMActorCriticPolicy
from agents.sb3.train import SB3_ALGOS, train_sb3

__all__ = [
    "KLA2C",
    "KLPPO",
    "SB3_ALGOS",
    "ForbidPad",
    "KLMaskablePPO",
    "KLRewardPenalty",
    "LMActorCriticPolicy",
    "MaskableLMActorCriticPolicy",
    "make_sb3_env",
    "train_sb3",
    "with_kl_penalty",
]

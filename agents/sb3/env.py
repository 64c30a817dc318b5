"""arith_gym as a Stable-Baselines3 ``VecEnv``, with action masks for MaskablePPO."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from arith_gym.task import env_id, get_task
from arith_gym.tokenizer import PAD_ID


class ForbidPad(gym.Wrapper):
    """Adds ``action_masks()`` (for MaskablePPO): every token allowed except the pad token.

    Playing the pad ends an episode as wrong; masking it keeps episodes going until the
    answer line is written or the step limit is reached.
    """

    def action_masks(self) -> np.ndarray:
        mask = np.ones(self.action_space.n, dtype=bool)
        mask[PAD_ID] = False
        return mask


def make_sb3_env(
    comfort_digits: int = 3,
    split: str = "plus1",
    n_envs: int = 1,
    seed: int | None = None,
    forbid_pad: bool = False,
    task: str = "Addition",
    **env_kwargs: Any,
) -> VecEnv:
    """An SB3 ``VecEnv`` (``DummyVecEnv`` of ``Monitor``-wrapped envs) of ``arith_gym/<task>-v0``.

    ``forbid_pad=True`` wraps each env in :class:`ForbidPad` (action masks for MaskablePPO);
    ``env_kwargs`` go to the env (``reward_mode``, ``max_episode_steps``, ...).
    """
    return make_vec_env(
        env_id(get_task(task).name),
        n_envs=n_envs,
        seed=seed,
        # SB3 asks for render_mode="rgb_array" unless told otherwise; this env renders text only.
        env_kwargs={"render_mode": None, **env_kwargs, "comfort_digits": comfort_digits, "split": split},
        wrapper_class=ForbidPad if forbid_pad else None,
    )

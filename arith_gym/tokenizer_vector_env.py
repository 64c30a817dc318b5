"""A batch of :class:`~arith_gym.task_env.TaskEnv` episodes with any tokenizer, in the info layout of
the native vector env (:class:`~arith_gym.vector_env.TaskVectorEnv`).

The native vector env's speed comes from numpy tables of one character per step; a tokenizer's
tokens write any number of characters, so here each sub-env is a ``TaskEnv`` with the codec
(:mod:`arith_gym.codec`) and this class only batches them: same rewards, episode ends and info
values as the single env, laid out as the native vector env lays them out (``critical`` a dict
of int arrays with its mask, ``correct``/``result`` where an episode ended), so a rollout reads
both alike. Autoreset is ``DISABLED`` only (what batched rollouts use): a finished env ignores
its actions until ``reset``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from arith_gym.codec import as_codec
from arith_gym.rules import RENDER_MODES, EnvConfig, check_forced_operands, check_reset_options, check_seeds
from arith_gym.task import Task, get_task
from arith_gym.task_env import TaskEnv
from arith_gym.vector_env import CRITICAL_FIELDS


class TokenizerVectorEnv(VectorEnv):
    """``num_envs`` :class:`TaskEnv` episodes of ``task`` played with ``tokenizer`` (a Hugging Face
    tokenizer or a codec), autoreset DISABLED.

    Arguments as :class:`~arith_gym.vector_env.TaskVectorEnv` (``comfort_digits``, ``split``,
    ``reward_mode``, ``max_episode_steps``, ``problem_set``, ``task``) plus ``tokenizer``. Reset
    options: ``operands`` (one problem or None per env) and ``reset_mask``.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(RENDER_MODES),
        "autoreset_mode": AutoresetMode.DISABLED,
    }

    def __init__(
        self,
        num_envs: int,
        comfort_digits: int = 3,
        split: str = "plus1",
        reward_mode: str = "binary",
        max_episode_steps: int | None = None,
        problem_set: str = "all",
        task: str | Task = "Addition",
        tokenizer: Any = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.DISABLED,
    ) -> None:
        if AutoresetMode(autoreset_mode) != AutoresetMode.DISABLED:
            raise ValueError("a vector env of another tokenizer resets only when told (autoreset DISABLED)")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.task = get_task(task)
        self.codec = as_codec(tokenizer, self.task.vocab_size)
        self.num_envs = int(num_envs)
        self.envs = [
            TaskEnv(
                self.task,
                comfort_digits,
                split,
                reward_mode,
                max_episode_steps,
                None,
                problem_set,
                self.codec,
            )
            for _ in range(self.num_envs)
        ]
        first = self.envs[0]
        self.config = EnvConfig.from_kwargs(
            comfort_digits, split, reward_mode, None, first.max_episode_steps, None, problem_set, self.task
        )
        self.single_action_space = first.action_space
        self.action_space = batch_space(first.action_space, self.num_envs)
        self.single_observation_space = first.observation_space
        self.observation_space = batch_space(first.observation_space, self.num_envs)
        self._infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._obs = np.zeros((self.num_envs, *first.observation_space.shape), dtype=np.int64)
        self._done = np.ones(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (or those in ``options["reset_mask"]``); env i gets seed ``seed + i``."""
        options = check_reset_options(options, ("operands", "reset_mask"))
        mask = options.get("reset_mask")
        mask = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        seeds = check_seeds(seed, self.num_envs)
        forced = check_forced_operands(options.get("operands"), mask, self.config)
        for i in np.flatnonzero(mask).tolist():
            problem = {"problem": forced[i]} if forced[i] is not None else None
            self._obs[i], self._infos[i] = self.envs[i].reset(seed=seeds[i], options=problem)
            self._done[i] = False
        no_step = np.zeros(self.num_envs, dtype=bool)
        return self._obs.copy(), self._batched(no_step, no_step, [None] * self.num_envs)

    def step(self, actions: np.ndarray | Sequence[int]):
        """One token per env; finished envs ignore theirs (reward 0, info unchanged)."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        rewards = np.zeros(self.num_envs)
        terminated, truncated = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        critical: list[Any] = [None] * self.num_envs
        for i in np.flatnonzero(~self._done).tolist():
            self._obs[i], rewards[i], terminated[i], truncated[i], self._infos[i] = self.envs[i].step(
                int(actions[i])
            )
            critical[i] = self._infos[i]["critical"]
        ended = terminated | truncated
        self._done |= ended
        return self._obs.copy(), rewards, terminated, truncated, self._batched(ended, ended, critical)

    def _batched(self, ended: np.ndarray, report: np.ndarray, critical: list[Any]) -> dict[str, Any]:
        """The native vector env's info layout from the sub-envs' infos."""
        infos, n = self._infos, self.num_envs
        info: dict[str, Any] = {
            "problem": _objects([i.get("problem") for i in infos]),
            "prompt": np.array([i.get("prompt", "") for i in infos], dtype=str),
            "target": np.array([i.get("target", "") for i in infos], dtype=str),
            # An object array: a token may write characters a numpy str array drops (a trailing NUL).
            "text": _objects([i.get("text", "") for i in infos]),
            "on_track": np.array([i.get("on_track", True) for i in infos], dtype=bool),
        }
        for key in list(info):
            info[f"_{key}"] = np.ones(n, dtype=bool)
        fields = np.full((len(CRITICAL_FIELDS), n), -1, dtype=np.int64)
        kinds = self.task.critical_kinds
        for i, token in enumerate(critical):
            if token is not None:
                fields[:, i] = (
                    token.position,
                    token.line,
                    token.operand,
                    token.index,
                    kinds.index(token.kind),
                )
        info["critical"] = dict(zip(CRITICAL_FIELDS, fields, strict=True))
        info["_critical"] = np.array([token is not None for token in critical], dtype=bool)
        info["correct"] = np.array(
            [bool(report[i] and infos[i].get("correct")) for i in range(n)], dtype=bool
        )
        info["result"] = _objects([infos[i].get("result") if report[i] else None for i in range(n)])
        info["_correct"], info["_result"] = ended.copy(), ended.copy()
        return info


def _objects(values: list[Any]) -> np.ndarray:
    """``values`` as a 1-D object array (tuples stay whole)."""
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        array[index] = value
    return array

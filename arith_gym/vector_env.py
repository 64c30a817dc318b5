"""The native batched environment of every task (``gym.make_vec``): addition's
:class:`~arith_gym.env.AdditionEnv` and every :class:`~arith_gym.task_env.TaskEnv`.

Every sub-environment's state lives in numpy arrays indexed by env, so one ``step`` is a
fixed number of numpy operations whatever ``num_envs`` is; Python runs per finished
episode only (judging the result, drawing the next problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from arith_gym.codepoints import BYTE_TO_ID, ID_TO_CODE, store_codes, store_str, strings
from arith_gym.rules import (
    RENDER_MODES,
    RESULT_LINE_ENDED,
    EnvConfig,
    check_actions,
    check_forced_operands,
    check_reset_mask,
    check_reset_options,
    check_seeds,
    judge,
    render_episode,
    result_line_table,
)

# The info["critical"]["kind"] codes are the scratchpad's record kind codes, re-exported here.
from arith_gym.scratchpad import CRITICAL_KIND_CODES as CRITICAL_KIND_CODES
from arith_gym.scratchpad import CRITICAL_KINDS as CRITICAL_KINDS
from arith_gym.task import Task
from arith_gym.tokenizer import PAD_ID

CRITICAL_FIELDS: tuple[str, ...] = ("position", "line", "operand", "index", "kind")
"""The keys of ``info["critical"]``; -1 where an env has no critical record this step."""


class TaskVectorEnv(VectorEnv):
    """``num_envs`` independent episodes of one task, batched in numpy.

    Create it with ``gym.make_vec("arith_gym/<Task>-v0", num_envs=n,
    vectorization_mode="vector_entry_point", **kwargs)`` or directly (``task=`` a registered
    name or a task object; default addition). It takes the single environment's keyword
    arguments (same defaults, same validation) plus ``autoreset_mode``, and gives the same
    rewards, episode ends and info values as ``AdditionEnv`` (addition) or ``TaskEnv`` for the
    same problems and actions.

    Spaces (V = ``task.vocab_size``, 41 for addition): ``action_space`` is
    ``MultiDiscrete([V] * num_envs)``; actions are an integer array of shape ``(num_envs,)``
    (a list of ints works too). ``observation_space`` is ``Box(0, V - 1, (num_envs,
    context_length), int64)``. Rewards are float64, terminations and truncations bool arrays.

    Info (vector convention: every key has a bool mask ``_key``). Every key is present on
    every call; its mask says which envs it is valid for:

    - ``problem``: object array of problem keys (tuples of ints; addition ``(a, b)``), and
      for addition ``a``, ``b`` (object arrays of Python ints); ``prompt``, ``target``,
      ``text``: numpy ``str`` arrays; ``on_track``: bool array. Valid for every env (on a
      masked reset, only for the reset envs).
    - ``critical``: dict of int64 arrays ``position, line, operand, index, kind`` (kind codes
      index ``task.critical_kinds``, addition's :data:`CRITICAL_KINDS`; -1 where no record),
      valid where ``_critical`` is True: the
      text was on track before this step and the step wrote (or padded) at a critical
      position, right or wrong (``on_track`` says which).
    - ``correct`` (bool) and ``result`` (object: int or None): valid where an episode ended
      this step (``_correct``/``_result``).

    Autoreset (``autoreset_mode``, also in ``metadata["autoreset_mode"]``), as Gymnasium
    documents it:

    - ``NEXT_STEP`` (default): the step after an env's episode ended ignores its action and
      resets it: reset observation, reward 0, terminated/truncated False, the reset info.
    - ``SAME_STEP``: an env whose episode ends is reset in the same step; the observation
      and info returned for it are the reset ones, its final observation is in
      ``info["final_obs"]`` (object array, mask ``_final_obs``) and its final step info in
      ``info["final_info"]`` (same layout as info, masks only for ended envs; mask
      ``_final_info``).
    - ``DISABLED``: nothing resets by itself. A finished env ignores its actions (they
      must still be valid ids) and returns reward 0, terminated False, truncated False,
      its final observation and its info unchanged (``correct``/``result`` are reported
      only on the step its episode ended, ``critical`` never) until
      ``reset(options={"reset_mask": mask})`` resets it. Batched rollouts can therefore
      keep stepping the whole batch until every episode has ended.

    Reset: ``reset(seed=None, options=None)``. ``seed``: None, an int s (env i gets seed
    s + i, like ``SyncVectorEnv``, so env i draws the same problems as
    ``AdditionEnv.reset(seed=s + i)`` and the resets after it) or a list of ``num_envs``
    ints/None. Options:

    - ``reset_mask``: bool array of shape ``(num_envs,)`` with at least one True: reset
      only those envs (the others keep their state; their info masks are False).
    - ``operands``: a sequence of ``num_envs`` entries, a problem key (addition ``(a, b)``)
      to force env i's problem or None to sample it; with a ``reset_mask``, None outside it
      (it would be silently unused). Forced problems must fit (:meth:`~arith_gym.env.Problem.build`).

    Envs that autoreset draw their next problem from their own generator.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(RENDER_MODES),
        "render_fps": 30,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        comfort_digits: int = 3,
        split: str = "plus1",
        reward_mode: str = "binary",
        context_length: int | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        problem_set: str = "all",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: str | Task = "Addition",
        tokenizer: object = None,
    ) -> None:
        if tokenizer is not None:  # TaskEnv plays any tokenizer: gym.make_vec(..., "sync") batches it
            raise ValueError("the native vector env plays character tokens; use vectorization_mode='sync'")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        try:
            autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError as error:
            modes = [mode.value for mode in AutoresetMode]
            raise ValueError(f"autoreset_mode must be an AutoresetMode or one of {modes}") from error
        limits = context_length, max_episode_steps, render_mode, problem_set, task
        self.config = EnvConfig.from_kwargs(comfort_digits, split, reward_mode, *limits)
        self.task = self.config.task
        vocab = self.task.vocab_size
        self._table = result_line_table(vocab)
        # A task may name its key's entries as info keys of their own (addition: a, b).
        self._key_fields: tuple[str, ...] = getattr(self.task, "info_fields", ())
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.autoreset_mode = autoreset_mode
        self.metadata = {**type(self).metadata, "autoreset_mode": autoreset_mode}
        self.single_action_space = spaces.Discrete(vocab)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = spaces.Box(
            0, vocab - 1, shape=(self.config.context_length,), dtype=np.int64
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._allocate()

    def _allocate(self) -> None:
        n, width = self.num_envs, self.config.max_episode_steps
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._needs_reset = True
        self._obs = np.full((n, self.config.context_length), PAD_ID, dtype=np.int64)
        # The generated text and target as code points, zero after the string: viewed
        # as dtype f"U{w}" each row is the string (numpy str arrays are UCS-4 and drop trailing
        # NULs), so building an info str array is one copy, not a per-character conversion.
        # See codepoints.strings for why each table has a spare column.
        self._text = np.zeros((n, width + 1), dtype=np.uint32)
        self._prompts = np.full(n, "", dtype=f"U{self.config.max_prompt_length}")
        # The targets also as a str array, row by row as episodes start: info copies it whole
        # (one copy, where building it from the code points every step took twice as long).
        self._targets = np.full(n, "", dtype=f"U{self.config.max_target_length}")
        # At least max_episode_steps wide (nothing later can be written): the step compares
        # the written code points with it, and 0 (after the target) matches no token.
        target_width = max(self.config.max_target_length, width) + 1
        self._target_codes = np.zeros((n, target_width), dtype=np.uint32)
        self._prompt_lengths = np.zeros(n, dtype=np.int64)
        # Per target position: line, operand, index, kind code of its critical token, or -1s;
        # and whether it has one (the step looks that up first: records are rare).
        self._critical = np.full((n, width, 4), -1, dtype=np.int64)
        self._is_critical = np.zeros((n, width), dtype=bool)
        self._steps = np.zeros(n, dtype=np.int64)  # generated tokens
        # Generated tokens at which the episode is truncated: the step or the context limit.
        self._step_limits = np.zeros(n, dtype=np.int64)
        self._on_track = np.ones(n, dtype=bool)
        self._automaton = np.zeros(n, dtype=np.int64)  # state in the result-line table
        self._done = np.zeros(n, dtype=bool)  # episode over (awaiting a reset)
        self._problems = np.empty(n, dtype=object)
        # The key's entries a task names as info keys (addition: a, b), kept as arrays like the key.
        self._key_arrays = [np.zeros(n, dtype=object) for _ in self._key_fields]
        self._answers = np.zeros(n, dtype=object)

    # ------------------------------------------------------------------ reset

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs, or those in ``options["reset_mask"]``; see the class docstring."""
        options = check_reset_options(options, ("operands", "reset_mask"))
        mask = check_reset_mask(options.get("reset_mask"), self.num_envs, first=self._needs_reset)
        seeds = check_seeds(seed, self.num_envs)
        forced = check_forced_operands(options.get("operands"), mask, self.config)
        envs = np.flatnonzero(mask)
        for i in envs.tolist():
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
        self._load(envs, forced)
        self._needs_reset = False
        infos = self._infos(*self._no_critical(), *self._no_results())
        for key in (*self._key_fields, "problem", "prompt", "target", "text", "on_track"):
            infos[f"_{key}"] = mask.copy()
        return self._obs.copy(), infos

    def _load(self, envs: np.ndarray, forced: list[tuple[int, ...] | None] | None = None) -> None:
        """Start new episodes in ``envs``: env i gets ``forced[i]`` (checked) or its generator's problem.

        This runs once per episode, so it is kept to a few numpy calls per env: the rows
        are cleared together, and only the prompt, target and critical records are
        written per env.
        """
        config, task = self.config, self.task
        width = config.max_episode_steps  # no critical record past it can be reached
        self._obs[envs] = PAD_ID
        self._text[envs] = 0
        self._target_codes[envs] = 0
        self._critical[envs] = -1
        self._is_critical[envs] = False
        prompt_lengths = []
        for i in envs.tolist():
            problem = None if forced is None else forced[i]
            if problem is None:
                problem = task.sample(self._rngs[i], config.split, config.comfort_digits, config.problem_set)
            prompt = task.prompt(problem)
            target, records = task.target(problem, config.comfort_digits)
            self._problems[i], self._answers[i] = problem, task.answer(problem)
            for entries, value in zip(self._key_arrays, problem, strict=False):
                entries[i] = value
            prompt_bytes = np.frombuffer(prompt.encode("ascii"), dtype=np.uint8)
            self._obs[i, : len(prompt)] = BYTE_TO_ID[prompt_bytes]
            self._prompts = store_str(self._prompts, i, prompt)
            self._target_codes = store_codes(self._target_codes, i, target.encode("ascii"))
            self._targets = store_str(self._targets, i, target)
            if records:
                table = np.array([r for r in records if r[0] < width], dtype=np.int64).reshape(-1, 5)
                self._critical[i, table[:, 0]] = table[:, 1:]
                self._is_critical[i, table[:, 0]] = True
            prompt_lengths.append(len(prompt))
        lengths = np.array(prompt_lengths, dtype=np.int64)
        self._prompt_lengths[envs] = lengths
        self._step_limits[envs] = np.minimum(config.max_episode_steps, config.context_length - lengths)
        self._steps[envs] = 0
        self._automaton[envs] = 0
        self._on_track[envs] = True
        self._done[envs] = False

    # ------------------------------------------------------------------- step

    def step(
        self, actions: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Append one token per env; see the class docstring for autoreset and info."""
        if self._needs_reset:
            raise gym.error.ResetNeeded("step() called before reset(); call reset() first")
        actions = check_actions(actions, self.num_envs, self.task.vocab_size)
        live = ~self._done
        # NEXT_STEP: the envs that ended last step sit this one out and are reset at its end.
        autoreset = self._done.copy() if self.autoreset_mode == AutoresetMode.NEXT_STEP else None
        pad = live & (actions == PAD_ID)
        # A decision at a critical position counts whichever token it took (pads included).
        deciding = np.flatnonzero(live & self._on_track)
        critical = self._critical_records(deciding, self._steps[deciding])
        rows = np.flatnonzero(live ^ pad)  # live and not pad (pad implies live)
        tokens = actions[rows]
        codes = ID_TO_CODE[tokens]
        positions = self._steps[rows]
        self._obs[rows, self._prompt_lengths[rows] + positions] = tokens
        self._text[rows, positions] = codes
        self._steps[rows] = positions + 1
        on_track = self._on_track[rows] & (self._target_codes[rows, positions] == codes)
        self._on_track[rows] = on_track
        self._on_track[pad] = False
        states = self._table[self._automaton[rows], tokens]
        self._automaton[rows] = states

        terminated = pad
        terminated[rows[states == RESULT_LINE_ENDED]] = True
        truncated = (self._steps >= self._step_limits) & live & ~terminated
        ended = terminated | truncated
        self._done |= ended
        rewards, results = self._judge(ended)

        if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
            infos = self._same_step_reset(ended, critical, results)
        else:
            if autoreset is not None and autoreset.any():
                self._load(np.flatnonzero(autoreset))
            infos = self._infos(*critical, *results)
        return self._obs.copy(), rewards, terminated, truncated, infos

    def _critical_records(self, rows: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Info ``critical`` fields (5, num_envs) and mask for decisions at ``positions``."""
        has = self._is_critical[rows, positions]
        fields = np.full((len(CRITICAL_FIELDS), self.num_envs), -1, dtype=np.int64)
        mask = np.zeros(self.num_envs, dtype=bool)
        if has.any():
            rows, positions = rows[has], positions[has]
            fields[0, rows] = positions
            fields[1:, rows] = self._critical[rows, positions].T
            mask[rows] = True
        return fields, mask

    def _judge(self, ended: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Final rewards, and (correct, result, mask) info arrays, for the envs that just ended."""
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float64)
        correct = np.zeros(n, dtype=bool)
        result = np.empty(n, dtype=object)  # all None
        for i in np.flatnonzero(ended):
            correct[i], result[i], rewards[i] = judge(
                self._text_of(i), self._answers[i], self.config.wrong_reward
            )
        return rewards, (correct, result, ended.copy())

    def _same_step_reset(
        self,
        ended: np.ndarray,
        critical: tuple[np.ndarray, np.ndarray],
        results: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> dict[str, Any]:
        """Reset the ``ended`` envs now; their last step goes to ``final_obs``/``final_info``."""
        step_infos = self._infos(*critical, *results)
        final_info = {}
        for key, value in step_infos.items():
            if not key.startswith("_"):
                final_info[key] = value
                final_info[f"_{key}"] = step_infos[f"_{key}"] & ended
        final_obs = np.full(self.num_envs, None, dtype=object)
        envs = np.flatnonzero(ended)
        for i in envs.tolist():
            final_obs[i] = self._obs[i].copy()
        self._load(envs)
        fields, mask = critical
        infos = self._infos(fields.copy(), mask & ~ended, *self._no_results())
        infos.update(final_obs=final_obs, _final_obs=ended.copy(), final_info=final_info)
        infos["_final_info"] = ended.copy()
        return infos

    # ------------------------------------------------------------------- info

    def _text_of(self, i: int) -> str:
        steps = int(self._steps[i])
        return str(self._text[i, :steps].view(f"U{steps}")[0]) if steps else ""

    def _texts(self) -> np.ndarray:
        """Every env's generated text as a new str array."""
        return strings(self._text, int(self._steps.max()))

    def _no_critical(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.num_envs
        return np.full((len(CRITICAL_FIELDS), n), -1, dtype=np.int64), np.zeros(n, dtype=bool)

    def _no_results(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.num_envs
        return np.zeros(n, dtype=bool), np.empty(n, dtype=object), np.zeros(n, dtype=bool)

    def _infos(
        self,
        critical_fields: np.ndarray,
        critical_mask: np.ndarray,
        correct: np.ndarray,
        result: np.ndarray,
        ended: np.ndarray,
    ) -> dict[str, Any]:
        """The info dict from the current state; every array is new (callers may keep them)."""
        infos: dict[str, Any] = {f: a.copy() for f, a in zip(self._key_fields, self._key_arrays, strict=True)}
        infos |= {
            "problem": self._problems.copy(),
            "prompt": self._prompts.copy(),
            "target": self._targets.copy(),
            "text": self._texts(),
            "on_track": self._on_track.copy(),
        }
        valid = np.ones(self.num_envs, dtype=bool)  # for every env (copies: cheaper than np.ones)
        for key in list(infos):
            infos[f"_{key}"] = valid.copy()
        infos.update(
            critical=dict(zip(CRITICAL_FIELDS, critical_fields, strict=True)), _critical=critical_mask
        )
        infos.update(correct=correct, _correct=ended, result=result, _result=ended.copy())
        return infos

    # ---------------------------------------------------------------- render

    def render(self) -> tuple[str, ...] | None:
        """``"ansi"``: a tuple of every env's prompt + text; ``"human"``: print them."""
        frames = tuple(str(p) + str(t) for p, t in zip(self._prompts, self._texts(), strict=True))
        return None if render_episode(self.render_mode, "\n".join(frames)) is None else frames


AdditionVectorEnv = TaskVectorEnv  # the vector env of arith_gym/Addition-v0, by its earlier name

"""The addition task as a token-level Gymnasium environment (``arith_gym/Addition-v0``).

Its rules (arguments, problems, episode end, reward) live in :mod:`arith_gym.rules`, shared
with the vector environment.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from arith_gym import operands
from arith_gym.rules import (
    RENDER_MODES,
    RESULT_LINE_ENDED,
    RESULT_LINE_NEXT,
    RESULT_LINE_START,
    EnvConfig,
    Problem,
    check_action,
    check_in_problem_set,
    check_operand_pair,
    check_reset_options,
    judge,
    render_episode,
)
from arith_gym.scratchpad import CriticalToken
from arith_gym.tokenizer import PAD_ID, VOCAB, VOCAB_SIZE


class AdditionEnv(gym.Env[np.ndarray, int]):
    """Multi-digit addition with a scratchpad, one character token per step.

    ## Description

    The agent (a language model) sees the prompt ``Input:\\n{a}+{b}\\nTarget:\\n`` and writes
    the scratchpad and the result line of ``docs/format.md`` one character at a
    time. Only the result line is judged. Problems come from the operand distribution
    ``split`` for a model whose comfort zone is ``comfort_digits`` (N) digits: ``comfort``
    (1..N digits) or ``plus{k}`` (one operand of exactly N+k digits).

    ## Action Space

    ``Discrete(VOCAB_SIZE)``: the id of the token to append (see ``arith_gym.VOCAB``).
    Playing ``PAD_ID`` ends the episode as a wrong answer (the pad is not added to the text).
    Python ints, numpy integer scalars and 0-d integer arrays are accepted; anything else
    (floats, bools, strings, arrays of another shape, ids out of range) raises.

    ## Observation Space

    ``Box(0, VOCAB_SIZE - 1, shape=(context_length,), dtype=int64)``: the prompt's and the
    generated tokens' ids, left-aligned, the rest ``PAD_ID``.

    ## Rewards

    0 on every step but the last. On the last step: 1 if ``parse_result(text) == a + b``,
    else 0 (``reward_mode="binary"``) or -1 (``reward_mode="ternary"``). A truncated
    episode is wrong.

    ## Starting State

    A problem drawn with ``self.np_random`` from ``split``, or the one forced with
    ``reset(options={"operands": (a, b)})``. The generated text is empty.

    ## Episode End

    - Termination: the newline that ends the result line (the first ``"\\n"`` after the
      first ``"</scratch>\\n"`` of the generated text), or playing the pad token.
    - Truncation: ``max_episode_steps`` tokens generated, or the context is full.

    The environment truncates itself (the registration sets no ``TimeLimit``) because its
    default limit depends on the arguments. Mind that ``gym.make(..., max_episode_steps=k)``
    never reaches this environment: Gymnasium keeps that argument for its own ``TimeLimit``
    wrapper, which cuts the episode after k steps with that step's reward (0, even in
    ``"ternary"`` mode) and info (no ``correct`` or ``result``). For this environment's own
    limit, construct ``AdditionEnv(max_episode_steps=k)`` (or its vector env) directly.

    ## Arguments

    - ``comfort_digits`` (int, default 3): N, the comfort zone's largest digit count.
    - ``split`` (str, default ``"plus1"``): ``"comfort"`` or ``"plus{k}"``, k >= 1.
    - ``reward_mode`` (str, default ``"binary"``): ``"binary"`` (1/0) or ``"ternary"`` (1/-1).
    - ``context_length`` (int, default the split's longest prompt + ``max_episode_steps``):
      observation length; must exceed the split's longest prompt.
    - ``max_episode_steps`` (int, default the length of the split's longest target + 100).
    - ``render_mode`` (None, ``"ansi"``: ``render()`` returns prompt + text, ``"human"``:
      ``render()`` prints it; nothing is rendered automatically during ``step``).
    - ``problem_set`` (str, default ``"all"``): ``"train"`` never draws a held-out problem
      (:func:`arith_gym.operands.is_heldout`, 1 in 16), ``"heldout"`` draws only those; forced
      operands must belong to it too.

    ## Info

    On reset and on every step: ``a``, ``b`` (int), ``prompt``, ``target`` (str), ``text``
    (str, generated so far), ``on_track`` (bool, ``text`` is a prefix of ``target``),
    ``critical`` (the :class:`~arith_gym.scratchpad.CriticalToken` of the position this step
    wrote, or ended the episode at with the pad token, when the text before it was on track and
    the target's token there is critical, else None; None on reset): the step was a decision
    at a critical token, right (``on_track`` stays True) or wrong.
    On the last step also ``correct`` (bool) and ``result`` (``parse_result(text)``, int or None).

    ## Example

    >>> import gymnasium as gym
    >>> import arith_gym
    >>> env = gym.make("arith_gym/Addition-v0", comfort_digits=3, split="plus1")
    >>> obs, info = env.reset(seed=0, options={"operands": (95, 8)})
    >>> for token in arith_gym.encode(info["target"]):
    ...     obs, reward, terminated, truncated, info = env.step(token)
    >>> reward, terminated, info["correct"], info["result"]
    (1.0, True, True, 103)
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 30}

    def __init__(
        self,
        comfort_digits: int = 3,
        split: str = "plus1",
        reward_mode: str = "binary",
        context_length: int | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        problem_set: str = "all",
    ) -> None:
        self.config = EnvConfig.from_kwargs(
            comfort_digits, split, reward_mode, context_length, max_episode_steps, render_mode, problem_set
        )
        self._split_offset = operands.split_offset(self.config.split)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(VOCAB_SIZE)
        self.observation_space = spaces.Box(
            0, VOCAB_SIZE - 1, shape=(self.config.context_length,), dtype=np.int64
        )
        self._obs = np.full(self.config.context_length, PAD_ID, dtype=np.int64)
        self._problem: Problem | None = None
        self._done = True  # no episode until the first reset
        self._text = ""
        self._length = 0
        self._on_track = True
        self._result_line = RESULT_LINE_START
        self._target_ids: list[int] = []
        self._critical_at: dict[int, CriticalToken] = {}

    @property
    def problem(self) -> Problem | None:
        """The current episode's problem (None before the first reset)."""
        return self._problem

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: a sampled problem, or ``options={"operands": (a, b)}``."""
        super().reset(seed=seed)
        options = check_reset_options(options, ("operands",))
        if options.get("operands") is not None:
            a, b = check_operand_pair(options["operands"])
            check_in_problem_set((a, b), self.config)
            problem = Problem.build(a, b, self.config, forced=True)
        else:
            config = self.config
            a, b = operands.draw_operands(
                self.np_random, self._split_offset, config.comfort_digits, config.problem_set
            )
            problem = Problem.build(a, b, self.config, forced=False)
        self._start(problem)
        return self._obs.copy(), self._info(None)

    def _start(self, problem: Problem) -> None:
        self._problem = problem
        self._obs.fill(PAD_ID)
        self._obs[: len(problem.prompt_ids)] = problem.prompt_ids
        self._length = len(problem.prompt_ids)
        self._text = ""
        self._on_track = True
        self._result_line = RESULT_LINE_START
        self._done = False
        # Plain Python containers: indexing them is what the per-step code does fastest.
        self._target_ids = problem.target_ids.tolist()
        self._critical_at = {token.position: token for token in problem.critical}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Append token ``action``; see the class docstring for rewards and episode end."""
        if self._done:
            raise gym.error.ResetNeeded(
                "step() called before reset() or after the episode ended; call reset() first"
            )
        token = check_action(action)
        position = len(self._text)
        # A decision at a critical position counts whichever token it took: the wrong ones are
        # the failures that critical-token methods are about.
        critical = self._critical_at.get(position) if self._on_track else None
        if token == PAD_ID:
            self._on_track = False
            terminated = True
        else:
            self._obs[self._length] = token
            self._length += 1
            self._text += VOCAB[token]
            target = self._target_ids
            self._on_track = self._on_track and position < len(target) and target[position] == token
            self._result_line = RESULT_LINE_NEXT[self._result_line][token]
            terminated = self._result_line == RESULT_LINE_ENDED
        truncated = not terminated and (
            len(self._text) >= self.config.max_episode_steps or self._length >= self.config.context_length
        )
        info = self._info(critical)
        reward = 0.0
        if terminated or truncated:
            self._done = True
            info["correct"], info["result"], reward = judge(
                self._text, self._problem.answer, self.config.wrong_reward
            )
        return self._obs.copy(), reward, terminated, truncated, info

    def _info(self, critical: CriticalToken | None) -> dict[str, Any]:
        problem = self._problem
        return {
            "a": problem.a,
            "b": problem.b,
            "prompt": problem.prompt,
            "target": problem.target,
            "text": self._text,
            "on_track": self._on_track,
            "critical": critical,
        }

    def render(self) -> str | None:
        """``"ansi"``: return prompt + generated text; ``"human"``: print it."""
        return render_episode(self.render_mode, (self._problem.prompt if self._problem else "") + self._text)

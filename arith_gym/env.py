"""The addition task as a token-level Gymnasium environment (``arith_gym/Addition-v0``).

The module also holds what the single and the vector environment share: the validated
configuration (:class:`EnvConfig`) and the per-problem precomputation (:class:`Problem`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from arith_gym import operands, scratchpad, tokenizer
from arith_gym.scratchpad import SCRATCH_CLOSE, CriticalToken, parse_result
from arith_gym.tokenizer import PAD_ID, VOCAB, VOCAB_SIZE

REWARD_MODES = ("binary", "ternary")
RENDER_MODES = ("ansi", "human")
EPISODE_STEP_SLACK = 100
"""Generated tokens allowed beyond the longest target before an episode is truncated."""

NEWLINE_ID = tokenizer.TOKEN_TO_ID["\n"]


def _check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def longest_problem(comfort_digits: int, split: str) -> tuple[int, int]:
    """The split's problem with the longest prompt and target: both operands all 9s.

    All 9s give the most digit lines, a two-digit sum on every line and a final carry.
    """
    largest = 10 ** operands.max_digits(split, comfort_digits) - 1
    return largest, largest


@dataclass(frozen=True)
class EnvConfig:
    """The validated arguments of :class:`AdditionEnv` and the vector environment.

    Build it with :meth:`from_kwargs`, which fills in the defaults and names any bad argument.
    """

    comfort_digits: int
    split: str
    reward_mode: str
    context_length: int
    max_episode_steps: int
    render_mode: str | None
    max_prompt_length: int
    max_target_length: int

    @classmethod
    def from_kwargs(
        cls,
        comfort_digits: int = 3,
        split: str = "plus1",
        reward_mode: str = "binary",
        context_length: int | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ) -> EnvConfig:
        """Validate the environment's keyword arguments and fill in the defaults.

        Raises:
            ValueError: naming the first bad argument.
        """
        comfort_digits = _check_int(comfort_digits, "comfort_digits", 1)
        operands.split_offset(split)  # raises a ValueError naming the split
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got {render_mode!r}")
        a, b = longest_problem(comfort_digits, split)
        max_prompt = len(scratchpad.prompt_text(a, b))
        max_target = len(scratchpad.target_text(a, b))
        if max_episode_steps is None:
            max_episode_steps = max_target + EPISODE_STEP_SLACK
        max_episode_steps = _check_int(max_episode_steps, "max_episode_steps", 1)
        if context_length is None:
            context_length = max_prompt + max_episode_steps
        context_length = _check_int(context_length, "context_length", 1)
        if context_length < max_prompt + 1:
            raise ValueError(
                f"context_length={context_length} is shorter than the split's longest prompt + 1 "
                f"({max_prompt} + 1) for comfort_digits={comfort_digits}, split={split!r}"
            )
        return cls(
            comfort_digits,
            split,
            reward_mode,
            context_length,
            max_episode_steps,
            render_mode,
            max_prompt,
            max_target,
        )

    @property
    def wrong_reward(self) -> float:
        """The final reward of a wrong (or truncated) episode."""
        return -1.0 if self.reward_mode == "ternary" else 0.0


@dataclass(frozen=True, eq=False)  # eq would compare numpy arrays
class Problem:
    """One addition problem with everything an episode needs precomputed."""

    a: int
    b: int
    prompt: str
    target: str
    prompt_ids: np.ndarray
    target_ids: np.ndarray
    critical: tuple[CriticalToken, ...]

    @property
    def answer(self) -> int:
        """``a + b``."""
        return self.a + self.b

    @classmethod
    def build(cls, a: int, b: int, config: EnvConfig, *, forced: bool) -> Problem:
        """Precompute problem ``a+b``.

        A ``forced`` problem (chosen by the caller) must fit: its prompt followed by its
        target (as much of it as ``max_episode_steps`` allows) must fit in the context, or
        the right answer could be cut off by the context, which is almost certainly a
        configuration mistake (an environment built for a smaller split). Sampled
        problems are not checked: they fit unless the caller shrank ``context_length`` on
        purpose, which is allowed (those episodes are truncated when the context is full).

        Raises:
            ValueError: for operands that are not non-negative integers, or a forced problem
                that does not fit.
        """
        a, b = scratchpad.check_operand(a, "a"), scratchpad.check_operand(b, "b")
        prompt = scratchpad.prompt_text(a, b)
        target, records = scratchpad.target_and_critical(a, b, config.comfort_digits)
        if forced:
            check_problem_fits(a, b, len(prompt), len(target), config)
        critical = tuple(map(CriticalToken.from_record, records))
        ids = tokenizer.encode(prompt), tokenizer.encode(target)
        return cls(a, b, prompt, target, ids[0], ids[1], critical)


def check_problem_fits(a: int, b: int, prompt_length: int, target_length: int, config: EnvConfig) -> None:
    """Raise the ``ValueError`` of :meth:`Problem.build` if forced problem ``a+b`` does not fit."""
    if prompt_length + min(target_length, config.max_episode_steps) > config.context_length:
        raise ValueError(
            f"operands ({a}, {b}) do not fit this environment: prompt ({prompt_length} tokens) + "
            f"target ({target_length} tokens, at most max_episode_steps={config.max_episode_steps}) "
            f"exceed context_length={config.context_length}; use a larger split or context_length"
        )


def check_reset_options(options: dict[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``options`` (``{}`` for None) after checking it holds only ``allowed`` keys."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(allowed)}")
    return dict(options)


def check_operand_pair(value: object, name: str = "operands") -> tuple[int, int]:
    """``(a, b)`` from a 2-sequence of non-negative integers, else ``ValueError``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair (a, b) of non-negative integers, got {value!r}")
    a, b = value
    return scratchpad.check_operand(a, f"{name}[0]"), scratchpad.check_operand(b, f"{name}[1]")


def check_action(action: object) -> int:
    """``action`` as a token id, or a ``TypeError``/``ValueError`` that names it.

    Accepted: Python int, numpy integer scalar, 0-d integer array; bools are rejected.
    """
    if type(action) is not int:
        if isinstance(action, np.integer) or (
            isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
        ):
            action = int(action)
        else:
            raise TypeError(
                f"action must be an integer token id (int, numpy integer or 0-d integer array), "
                f"got {action!r} of type {type(action).__name__}"
            )
    if not 0 <= action < VOCAB_SIZE:
        raise ValueError(f"action {action} is outside the action space Discrete({VOCAB_SIZE})")
    return action


class AdditionEnv(gym.Env[np.ndarray, int]):
    """Multi-digit addition with a scratchpad, one character token per step.

    ## Description

    The agent (a language model) sees the prompt ``Input:\\n{a}+{b}\\nTarget:\\n`` and writes
    the scratchpad and the result line of ``shared/spec/scratchpad.md`` one character at a
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
    ) -> None:
        self.config = EnvConfig.from_kwargs(
            comfort_digits, split, reward_mode, context_length, max_episode_steps, render_mode
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
        self._closed = False
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
            problem = Problem.build(a, b, self.config, forced=True)
        else:
            a, b = operands.draw_operands(self.np_random, self._split_offset, self.config.comfort_digits)
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
        self._closed = False
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
            terminated = self._ends_result_line(token)
        truncated = not terminated and (
            len(self._text) >= self.config.max_episode_steps or self._length >= self.config.context_length
        )
        info = self._info(critical)
        reward = 0.0
        if terminated or truncated:
            self._done = True
            result = parse_result(self._text)
            correct = result is not None and result == self._problem.answer
            info["correct"], info["result"] = correct, result
            reward = 1.0 if correct else self.config.wrong_reward
        return self._obs.copy(), reward, terminated, truncated, info

    def _ends_result_line(self, token: int) -> bool:
        """Whether ``token`` (just appended) is the newline that ends the result line."""
        if token != NEWLINE_ID:
            return False
        if self._closed:
            return True
        # Only a newline can complete "</scratch>\n", so the suffix check runs rarely.
        self._closed = self._text.endswith(SCRATCH_CLOSE)
        return False

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
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'")
            return None
        text = (self._problem.prompt if self._problem else "") + self._text
        if self.render_mode == "human":
            print(text)
            return None
        return text

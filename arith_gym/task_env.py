"""One environment for every registered task (:mod:`arith_gym.task`).

``gym.make("arith_gym/Multiply-v0", comfort_digits=3, split="plus1")`` (or ``MultiSum-v0``, or
a task of your own) makes a :class:`TaskEnv`; ``gym.make_vec`` runs copies of it side by side.
``arith_gym/Addition-v0`` keeps its own faster environment (:class:`arith_gym.env.AdditionEnv`,
and its vector env), which plays exactly what this one plays with the addition task (tested).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from arith_gym import operands
from arith_gym.codec import CharacterCodec, as_codec
from arith_gym.env import AdditionEnv
from arith_gym.rules import (
    EPISODE_STEP_SLACK,
    RENDER_MODES,
    REWARD_MODES,
    advance_result_line,
    judge,
    render_episode,
)
from arith_gym.rules import RESULT_LINE_ENDED as ENDED
from arith_gym.rules import RESULT_LINE_START as START
from arith_gym.scratchpad import CriticalToken
from arith_gym.task import ProblemKey, Task, get_task, in_problem_set, named_critical_tokens
from arith_gym.tokenizer import PAD_ID


class TaskEnv(gym.Env):
    """A task's problems played one token per step: one character, or with ``tokenizer`` any
    tokenizer's token (:mod:`arith_gym.codec`).

    ## Action Space

    ``Discrete(V)``: the id of the next token; V is ``task.vocab_size`` for the character tokens
    (:data:`~arith_gym.tokenizer.CHARACTERS`), else the tokenizer's vocabulary.

    ## Observation Space

    ``Box(0, V - 1, (context_length,), int64)``: the prompt's ids (its canonical encoding), then
    the ids generated so far, then the pad id (0 with a tokenizer).

    ## Rewards and Episode End

    As :class:`arith_gym.env.AdditionEnv`: the episode terminates at the token that writes the
    result line's newline (or, as wrong, at a token that writes no text: the pad token, any
    special token, a piece of a UTF-8 character) and is truncated after ``max_episode_steps``
    tokens; the last step pays 1 if the result line states the task's answer, else 0
    (``reward_mode="binary"``) or -1 (``"ternary"``). Only the text is judged: any tokenization
    of the target earns 1.

    ## Info

    ``problem`` (the task's key tuple; addition also ``a``, ``b``), ``prompt``, ``target``,
    ``text``, ``on_track`` (``text`` is a prefix of ``target``) and ``critical`` (the first
    :class:`~arith_gym.scratchpad.CriticalToken` whose character this step's text covers, or at
    which it ended the episode, when the text before it was on track; its ``kind`` one of
    ``task.critical_kinds``); on the last step ``correct`` and ``result``.

    ## Arguments

    ``task`` (a registered name or a task object), ``comfort_digits`` (N), ``split``
    (``comfort`` or ``plus{k}``), ``reward_mode``, ``max_episode_steps`` (default: the split's
    longest target + 100), ``render_mode`` (None or ``ansi``), ``problem_set`` (``all``,
    ``train``, ``heldout``), ``tokenizer`` (None: the character tokens; a Hugging Face
    tokenizer or an :class:`arith_gym.codec.Codec`). ``reset(options={"problem": key})`` (or
    ``"operands"``, addition's name) plays a given problem.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 30}

    def __init__(
        self,
        task: str | Task = "Addition",
        comfort_digits: int = 3,
        split: str = "plus1",
        reward_mode: str = "binary",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        problem_set: str = "all",
        tokenizer: Any = None,
    ) -> None:
        self.task = get_task(task)
        self.codec = as_codec(tokenizer, self.task.vocab_size)
        if (
            isinstance(comfort_digits, bool)
            or not isinstance(comfort_digits, (int, np.integer))
            or comfort_digits < 1
        ):
            raise ValueError(f"comfort_digits must be an integer >= 1, got {comfort_digits!r}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got {render_mode!r}")
        self.comfort_digits, self.split = int(comfort_digits), split
        operands.split_offset(split)
        self.problem_set = operands.check_problem_set(problem_set)
        longest = self.task.longest(split, self.comfort_digits)
        self.max_prompt = len(self.task.prompt(longest))
        self.max_target = len(self.task.target(longest, self.comfort_digits)[0])
        self.max_episode_steps = max_episode_steps or self.max_target + EPISODE_STEP_SLACK
        self.context_length = self.max_prompt + self.max_episode_steps
        self.wrong_reward = -1.0 if reward_mode == "ternary" else 0.0
        self.render_mode = render_mode
        vocab = self.codec.vocab_size
        self.action_space = spaces.Discrete(vocab)
        self.observation_space = spaces.Box(0, vocab - 1, shape=(self.context_length,), dtype=np.int64)
        self._pad = PAD_ID if isinstance(self.codec, CharacterCodec) else 0
        self._obs = np.full(self.context_length, self._pad, dtype=np.int64)
        self._done = True
        self.problem: ProblemKey | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: a sampled problem, or ``options={"problem": key}``."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"problem", "operands"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: ['operands', 'problem']")
        forced = options.get("problem", options.get("operands"))
        if forced is not None:
            problem = self.task.check(forced)
            if not in_problem_set(self.task, problem, self.problem_set):
                raise ValueError(f"problem {problem} is not in this env's problem_set={self.problem_set!r}")
        else:
            problem = self.task.sample(self.np_random, self.split, self.comfort_digits, self.problem_set)
        self.problem = problem
        self._prompt = self.task.prompt(problem)
        self._target, records = self.task.target(problem, self.comfort_digits)
        self._critical_at = {t.position: t for t in named_critical_tokens(self.task, records)}
        prompt_ids = self.codec.encode(self._prompt)
        if len(prompt_ids) + 1 > self.context_length:
            raise ValueError(
                f"problem {problem} does not fit this environment (prompt of {len(prompt_ids)} tokens)"
            )
        self._obs.fill(self._pad)
        self._obs[: len(prompt_ids)] = prompt_ids
        self._length, self._text, self._on_track, self._steps = len(prompt_ids), "", True, 0
        self._state, self._done = START, False
        return self._obs.copy(), self._info(None)

    def step(self, action: int):
        """Append token ``action``; see the class docstring for rewards and episode end."""
        if self._done:
            raise gym.error.ResetNeeded(
                "step() called before reset() or after the episode ended; call reset() first"
            )
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise TypeError(f"action must be an integer token id, got {action!r}")
        token = int(action)
        if not 0 <= token < self.codec.vocab_size:
            raise ValueError(f"action {token} is outside the action space Discrete({self.codec.vocab_size})")
        position = len(self._text)
        piece = self.codec.piece(token)
        # The decision this step made: the first critical character its text covers (the one at
        # its position for a token that writes nothing), while the text before it was on track.
        end = position + max(len(piece or ""), 1)
        critical = None
        if self._on_track:
            critical = next(
                (self._critical_at[p] for p in range(position, end) if p in self._critical_at), None
            )
        self._steps += 1
        if piece is None:
            self._on_track, terminated = False, True
        else:
            self._obs[self._length] = token
            self._length += 1
            self._text += piece
            self._on_track = self._on_track and self._target.startswith(piece, position)
            self._state = advance_result_line(self._state, piece)
            terminated = self._state == ENDED
        truncated = not terminated and (
            self._steps >= self.max_episode_steps or self._length >= self.context_length
        )
        info = self._info(critical)
        reward = 0.0
        if terminated or truncated:
            self._done = True
            info["correct"], info["result"], reward = judge(
                self._text, self.task.answer(self.problem), self.wrong_reward
            )
        return self._obs.copy(), reward, terminated, truncated, info

    def _info(self, critical: CriticalToken | None) -> dict[str, Any]:
        fields = getattr(self.task, "info_fields", ())
        return {
            **dict(zip(fields, self.problem or (), strict=False)),
            "problem": self.problem,
            "prompt": self._prompt,
            "target": self._target,
            "text": self._text,
            "on_track": self._on_track,
            "critical": critical,
        }

    def render(self) -> str | None:
        """``"ansi"``: return prompt + generated text; ``"human"``: print it."""
        return render_episode(
            self.render_mode, (self._prompt + self._text) if self.problem is not None else ""
        )


def make_addition_env(tokenizer: Any = None, **kwargs: Any) -> gym.Env:
    """``gym.make("arith_gym/Addition-v0", ...)``: the fast :class:`~arith_gym.env.AdditionEnv` for
    the character tokens, the :class:`TaskEnv` of addition for any other ``tokenizer``."""
    if tokenizer is None:
        return AdditionEnv(**kwargs)
    return TaskEnv("Addition", tokenizer=tokenizer, **kwargs)

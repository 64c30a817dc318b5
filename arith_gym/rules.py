"""The task's rules, shared by the single env, the vector env and the analyses.

- :data:`ENV_ID`, the registered id;
- :class:`EnvConfig`: the environment's validated arguments;
- :class:`Problem`: one problem with everything an episode needs precomputed;
- the argument checks (operand pairs, reset options, actions, forced problems that must fit);
- the result-line automaton (:data:`RESULT_LINE_NEXT`): when an episode ends, and
  :func:`judge`: whether it ended right, and its reward.

The text itself (prompt, scratchpad, result line, critical tokens) is :mod:`arith_gym.scratchpad`;
``docs/format.md`` specifies it.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from arith_gym import operands, scratchpad, tokenizer
from arith_gym.scratchpad import SCRATCH_CLOSE, CriticalToken, parse_result
from arith_gym.task import AdditionTask, ProblemKey, Task, get_task, in_problem_set
from arith_gym.tokenizer import VOCAB_SIZE

ENV_ID = "arith_gym/Addition-v0"
"""The Gymnasium id that ``import arith_gym`` registers."""

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
    problem_set: str = "all"
    task: Task = AdditionTask()
    """The task played (:mod:`arith_gym.task`); addition unless the env was given another."""

    @classmethod
    def from_kwargs(
        cls,
        comfort_digits: int = 3,
        split: str = "plus1",
        reward_mode: str = "binary",
        context_length: int | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        problem_set: str = "all",
        task: str | Task = "Addition",
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
        task = get_task(task)
        longest = task.longest(split, comfort_digits)
        max_prompt = len(task.prompt(longest))
        max_target = len(task.target(longest, comfort_digits)[0])
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
            operands.check_problem_set(problem_set),
            task,
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
            check_problem_fits((a, b), len(prompt), len(target), config)
        critical = tuple(map(CriticalToken.from_record, records))
        ids = tokenizer.encode(prompt), tokenizer.encode(target)
        return cls(a, b, prompt, target, ids[0], ids[1], critical)


def check_problem_fits(
    problem: ProblemKey, prompt_length: int, target_length: int, config: EnvConfig
) -> None:
    """Raise the ``ValueError`` of :meth:`Problem.build` if forced ``problem`` does not fit."""
    if prompt_length + min(target_length, config.max_episode_steps) > config.context_length:
        raise ValueError(
            f"operands {problem} do not fit this environment: prompt ({prompt_length} tokens) + "
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


def check_in_problem_set(problem: ProblemKey, config: EnvConfig, name: str = "operands") -> None:
    """A ``ValueError`` if forced ``problem`` is outside the env's ``problem_set``: a ``train``
    env must never play a held-out problem, a ``heldout`` env nothing else."""
    if not in_problem_set(config.task, problem, config.problem_set):
        where = "a held-out problem" if config.problem_set == "train" else "not a held-out problem"
        raise ValueError(f"{name} {problem} is {where}, and this env has problem_set={config.problem_set!r}")


def check_action(action: object, vocab_size: int = VOCAB_SIZE) -> int:
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
    if not 0 <= action < vocab_size:
        raise ValueError(f"action {action} is outside the action space Discrete({vocab_size})")
    return action


def check_actions(actions: object, num_envs: int, vocab_size: int = VOCAB_SIZE) -> np.ndarray:
    """A vector env's ``actions`` as an int64 array of shape ``(num_envs,)``, else an error naming them."""
    if not isinstance(actions, (np.ndarray, Sequence)) or isinstance(actions, (str, bytes)):
        raise TypeError(
            f"actions must be an array or list of {num_envs} integer token ids, "
            f"got {actions!r} of type {type(actions).__name__}"
        )
    if not isinstance(actions, np.ndarray) and any(isinstance(x, (bool, np.bool_)) for x in actions):
        raise TypeError(f"actions must be integer token ids, got bools in {actions!r}")
    array = np.asarray(actions)
    if array.dtype.kind not in "iu":
        raise TypeError(f"actions must be integer token ids, got dtype {array.dtype} ({actions!r})")
    if array.shape != (num_envs,):
        raise ValueError(f"actions must have shape ({num_envs},), got {array.shape}")
    # One comparison for both bounds: negative ids wrap to huge unsigned values.
    bad = array.astype(np.uint64, copy=False) >= vocab_size
    if bad.any():
        i = int(bad.argmax())
        raise ValueError(f"action {array[i]} of env {i} is outside the action space Discrete({vocab_size})")
    return array.astype(np.int64, copy=False)


def check_reset_mask(mask: object, n: int, first: bool) -> np.ndarray:
    """A vector env's ``options["reset_mask"]`` (None: every env); the ``first`` reset resets all."""
    if mask is None:
        return np.ones(n, dtype=bool)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
        raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape ({n},), got {mask!r}")
    if not mask.any():
        raise ValueError("options['reset_mask'] must select at least one env")
    if first and not mask.all():
        raise gym.error.ResetNeeded("the first reset() must reset every env (no reset_mask)")
    return mask


def check_seeds(seed: object, n: int) -> list[int | None]:
    """A vector env's ``reset(seed=...)`` as one seed per env: None, int s (env i gets s + i) or a list."""
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(n)]
    if isinstance(seed, Sequence) and not isinstance(seed, str) and len(seed) == n:
        return list(seed)
    raise ValueError(f"seed must be None, an int or a list of {n} ints/None, got {seed!r}")


def check_forced_operands(forced: object, mask: np.ndarray, config: EnvConfig) -> list[ProblemKey | None]:
    """A vector env's ``options["operands"]``: one checked problem of the env's task (addition:
    ``(a, b)``) or None per env."""
    n = len(mask)
    if forced is None:
        return [None] * n
    if isinstance(forced, (str, bytes)) or not isinstance(forced, Sequence) or len(forced) != n:
        raise ValueError(
            f"options['operands'] must be a sequence of {n} entries (a problem or None), got {forced!r}"
        )
    task, problems = config.task, []
    for i, entry in enumerate(forced):
        name = f"options['operands'][{i}]"
        if entry is not None and not mask[i]:
            raise ValueError(f"{name} is set but env {i} is not in reset_mask")
        if entry is None:
            problems.append(None)
            continue
        try:
            problem = task.check(entry)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        check_in_problem_set(problem, config, name)
        # Checked before any env changes, so a bad entry leaves the envs as they were.
        target_length = len(task.target(problem, config.comfort_digits)[0])
        check_problem_fits(problem, len(task.prompt(problem)), target_length, config)
        problems.append(problem)
    return problems


# --------------------------------------------------------------------------- episode end and reward


def _result_line_automaton() -> np.ndarray:
    """Transition table ``next_state = table[state, token]`` that finds the result line's end.

    States 0..L-1: how many characters of "</scratch>\\n" (length L) the text ends with;
    L: inside the result line; L+1 (:data:`RESULT_LINE_ENDED`): its newline was written.
    "<" occurs only at the pattern's start, so after a mismatch the only partial match
    left is a fresh "<" (no general KMP failure function needed).
    """
    pattern = tokenizer.encode(SCRATCH_CLOSE)
    length = len(pattern)
    table = np.zeros((length + 2, VOCAB_SIZE), dtype=np.int64)
    table[:length, tokenizer.TOKEN_TO_ID["<"]] = 1
    table[np.arange(length), pattern] = np.arange(1, length + 1)
    table[length] = length
    table[length, tokenizer.TOKEN_TO_ID["\n"]] = length + 1
    table[length + 1] = length + 1
    return table


def result_line_table(vocab_size: int) -> np.ndarray:
    """:data:`RESULT_LINE_TABLE` for a task whose token ids run to ``vocab_size`` (the characters
    after the addition vocabulary are never part of ``</scratch>``: they break a partial match)."""
    table = _result_line_automaton()
    extra = vocab_size - table.shape[1]
    if extra <= 0:
        return table[:, :vocab_size]
    column = np.zeros((table.shape[0], 1), dtype=np.int64)
    column[-2:, 0] = [table.shape[0] - 2, table.shape[0] - 1]  # the result line and its end hold
    return np.hstack([table, np.repeat(column, extra, axis=1)])


RESULT_LINE_TABLE: np.ndarray = _result_line_automaton()
"""``RESULT_LINE_TABLE[state, token]``: the automaton's next state (int64 array, for batches)."""
RESULT_LINE_NEXT: list[list[int]] = RESULT_LINE_TABLE.tolist()
"""The same table as nested lists: ``RESULT_LINE_NEXT[state][token]`` is fastest for one text."""
RESULT_LINE_START = 0
"""The state of an empty text."""
RESULT_LINE_ENDED = len(RESULT_LINE_NEXT) - 1
"""The state once the result line's newline is written: the episode terminates."""


_OTHER_CHARACTER = tokenizer.TOKEN_TO_ID["0"]  # a character in neither "</scratch>" nor a newline
_COLUMNS = {character: tokenizer.TOKEN_TO_ID[character] for character in tokenizer.VOCAB[: tokenizer.PAD_ID]}


def advance_result_line(state: int, text: str) -> int:
    """The automaton's state after reading ``text`` from ``state`` (any characters: one outside the
    character table reads as any character that is not part of ``</scratch>`` or a newline)."""
    table = RESULT_LINE_NEXT
    for character in text:
        state = table[state][_COLUMNS.get(character, _OTHER_CHARACTER)]
    return state


def episode_length(ids: Iterable[int]) -> int | None:
    """How many of the tokens ``ids`` (generated after the prompt) an episode plays: up to and
    including the result line's newline, where the env terminates it; None if it never does."""
    state = RESULT_LINE_START
    for index, token in enumerate(ids):
        state = RESULT_LINE_NEXT[state][token]
        if state == RESULT_LINE_ENDED:
            return index + 1
    return None


def render_episode(render_mode: str | None, text: str) -> str | None:
    """What an env's ``render()`` does with an episode's prompt + generated ``text``: ``"ansi"``
    returns it, ``"human"`` prints it, no render mode warns (every env of the package renders so)."""
    if render_mode is None:
        gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'")
        return None
    if render_mode == "human":
        print(text)
        return None
    return text


def judge(text: str, answer: int, wrong_reward: float) -> tuple[bool, int | None, float]:
    """``(correct, result, reward)`` of a finished episode's ``text`` for a problem whose sum is ``answer``.

    ``result`` is :func:`~arith_gym.scratchpad.parse_result` of the text; the reward is 1 when
    it equals ``answer``, else ``wrong_reward`` (:attr:`EnvConfig.wrong_reward`).
    """
    result = parse_result(text)
    correct = result is not None and result == answer
    return correct, result, 1.0 if correct else wrong_reward

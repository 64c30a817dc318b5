"""The task contract: what an arithmetic task with a scratchpad provides, and the task registry.

A task is a family of problems keyed by a difficulty N (the comfort zone a reference model is
pre-trained on) with splits ``comfort`` and ``plus{k}``, and for each problem a prompt, a target
text (a scratchpad between ``<scratch>`` and ``</scratch>``, then the result line) and the
target's structural critical tokens. What every task shares is the episode's end and the
judgement: an episode ends at the result line's newline (the first complete line after the first
``</scratch>\\n``) and is right when that line states the problem's answer
(:func:`arith_gym.rules.judge`, which never raises). :class:`arith_gym.task_env.TaskEnv` plays any
registered task; ``gym.make("arith_gym/<Name>-v0")`` makes it.

Register your own task (a class with the members of :class:`Task`) the way the built-ins are::

    from arith_gym.task import register_task
    register_task(MyTask())     # then gym.make("arith_gym/MyTask-v0", comfort_digits=2)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from gymnasium.envs.registration import register, registry

from arith_gym import anatomy, operands, scratchpad
from arith_gym.operands import HELDOUT_BUCKETS
from arith_gym.scratchpad import CriticalRecord, CriticalToken
from arith_gym.tokenizer import CHARACTERS, VOCAB_SIZE

ProblemKey = tuple[int, ...]
"""A problem: the task's integers (addition: ``(a, b)``; multiply: ``(a, d)``; a sum: its operands)."""


@runtime_checkable
class Task(Protocol):
    """What a task provides (all of it pure: no state, seeded draws only)."""

    name: str
    """The task's name; its environment is ``arith_gym/<name>-v0``."""
    vocab_size: int
    """Its token ids are ``0..vocab_size-1`` of :data:`arith_gym.tokenizer.CHARACTERS`."""
    critical_kinds: tuple[str, ...]
    """The kinds of its structural critical tokens (a record's kind code indexes this)."""
    # Optional: ``info_fields``, names under which the vector env's info also holds the problem
    # key's entries (addition: ``("a", "b")``); ``error_kinds`` and ``error_kind(problem,
    # comfort_digits, text)``, a finer account of where a text first goes wrong than
    # :data:`STRUCTURAL_ERROR_KINDS` (addition: :mod:`arith_gym.anatomy`).

    def sample(
        self, rng: np.random.Generator, split: str, comfort_digits: int, problem_set: str
    ) -> ProblemKey:
        """One problem of ``split`` for difficulty N = ``comfort_digits`` drawn from ``rng``, from
        ``problem_set`` (``all``, ``train``: never a held-out one, ``heldout``: only those)."""
        ...

    def check(self, problem: object) -> ProblemKey:
        """``problem`` as a key if it is a problem of this task, else a one-line ``ValueError``."""
        ...

    def key(self, problem: ProblemKey) -> str:
        """The problem's text key (addition: ``"a+b"``), which decides whether it is held out."""
        ...

    def prompt(self, problem: ProblemKey) -> str: ...

    def target(self, problem: ProblemKey, comfort_digits: int) -> tuple[str, list[CriticalRecord]]:
        """The target text and its structural critical tokens as records
        ``(position, line, operand, index, kind code)``, in order of position."""
        ...

    def answer(self, problem: ProblemKey) -> int: ...

    def longest(self, split: str, comfort_digits: int) -> ProblemKey:
        """The split's problem with the longest prompt and target (sizes the observation)."""
        ...


def is_heldout_key(key: str) -> bool:
    """Whether the problem whose text key is ``key`` is held out: 1 in 16, by a hash of the key
    (addition's ``"a+b"`` gives exactly :func:`arith_gym.operands.is_heldout`)."""
    digest = hashlib.blake2b(key.encode("ascii"), digest_size=2).digest()
    return int.from_bytes(digest, "little") % HELDOUT_BUCKETS == 0


def in_problem_set(task: Task, problem: ProblemKey, problem_set: str) -> bool:
    """Whether ``problem`` belongs to ``problem_set`` (``all``, ``train``, ``heldout``)."""
    return problem_set == "all" or is_heldout_key(task.key(problem)) == (problem_set == "heldout")


def check_int_tuple(value: object, name: str, length: int | None = None) -> ProblemKey:
    """``value`` as a tuple of non-negative integers (of ``length`` if given), else ``ValueError``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a sequence of non-negative integers, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must hold {length} integers, got {value!r}")
    return tuple(scratchpad.check_operand(item, f"{name}[{i}]") for i, item in enumerate(value))


class AdditionTask:
    """The paper's task, ``a+b`` (``docs/format.md``): the rules of :mod:`arith_gym.scratchpad` and
    :mod:`arith_gym.operands`, unchanged. ``arith_gym/Addition-v0`` keeps its own fast environment
    (:class:`arith_gym.env.AdditionEnv`), which plays exactly what :class:`~arith_gym.task_env.TaskEnv`
    plays with this task."""

    name = "Addition"
    vocab_size = VOCAB_SIZE
    critical_kinds = scratchpad.CRITICAL_KINDS
    info_fields = ("a", "b")
    """The vector env's info also holds the key's entries under these names (as it always has)."""
    error_kinds = anatomy.ERROR_KINDS

    def error_kind(self, problem: ProblemKey, comfort_digits: int, text: str) -> str | None:
        return anatomy.error_kind(problem[0], problem[1], comfort_digits, text)

    def sample(
        self, rng: np.random.Generator, split: str, comfort_digits: int, problem_set: str
    ) -> ProblemKey:
        return operands.draw_operands(rng, operands.split_offset(split), comfort_digits, problem_set)

    def check(self, problem: object) -> ProblemKey:
        return check_int_tuple(problem, "operands", 2)

    def key(self, problem: ProblemKey) -> str:
        return f"{problem[0]}+{problem[1]}"

    def prompt(self, problem: ProblemKey) -> str:
        return scratchpad.prompt_text(*problem)

    def target(self, problem: ProblemKey, comfort_digits: int) -> tuple[str, list[CriticalRecord]]:
        return scratchpad.target_and_critical(problem[0], problem[1], comfort_digits)

    def answer(self, problem: ProblemKey) -> int:
        return problem[0] + problem[1]

    def longest(self, split: str, comfort_digits: int) -> ProblemKey:
        largest = 10 ** operands.max_digits(split, comfort_digits) - 1
        return largest, largest


TASKS: dict[str, Task] = {}
"""Every registered task by name."""


def env_id(name: str) -> str:
    return f"arith_gym/{name}-v0"


def register_task(task: Task, *, make_env: bool = True) -> Task:
    """Register ``task`` (and, with ``make_env``, ``gym.make("arith_gym/<name>-v0")`` for it).

    Raises:
        ValueError: a name already taken, a vocabulary larger than :data:`CHARACTERS`, or an object
            missing the members of :class:`Task`.
    """
    if not isinstance(task, Task):
        raise ValueError(f"{task!r} lacks the members of arith_gym.task.Task")
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered; choose another name")
    if not 0 < task.vocab_size <= len(CHARACTERS):
        raise ValueError(
            f"task {task.name!r}: vocab_size must be in 1..{len(CHARACTERS)}, got {task.vocab_size}"
        )
    TASKS[task.name] = task
    if make_env and env_id(task.name) not in registry:
        register(
            id=env_id(task.name),
            entry_point="arith_gym.task_env:TaskEnv",
            vector_entry_point="arith_gym.vector_env:TaskVectorEnv",
            kwargs={"task": task.name},
        )
    return task


def get_task(name: str | Task) -> Task:
    """The registered task ``name`` (a task object is returned as it is)."""
    if not isinstance(name, str):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(TASKS)}") from None


# --------------------------------------------------------------------------- what every task shares


def task_problems(
    task: str | Task, split: str, comfort_digits: int, count: int, seed: int, problem_set: str = "all"
) -> list[ProblemKey]:
    """``count`` problems of ``split`` (from ``problem_set``) drawn with ``seed``: the same at every
    call (addition: exactly :func:`arith_gym.operands.split_problems`)."""
    task, rng = get_task(task), np.random.default_rng(seed)
    return [task.sample(rng, split, comfort_digits, problem_set) for _ in range(count)]


def heldout_draws(
    task: str | Task, comfort_digits: int, count: int, seed: int
) -> tuple[list[ProblemKey], list[ProblemKey]]:
    """``count`` held-out ``comfort`` problems, then ``count`` of ``plus1``, from one generator
    seeded ``seed`` (the reference gate's problems)."""
    task, rng = get_task(task), np.random.default_rng(seed)
    comfort = [task.sample(rng, "comfort", comfort_digits, "heldout") for _ in range(count)]
    return comfort, [task.sample(rng, "plus1", comfort_digits, "heldout") for _ in range(count)]


def critical_tokens_of(task: str | Task, problem: ProblemKey, comfort_digits: int) -> list[CriticalToken]:
    """The structural critical tokens of ``problem``'s target, their kinds named."""
    task = get_task(task)
    return named_critical_tokens(task, task.target(problem, comfort_digits)[1])


def named_critical_tokens(task: Task, records: list[CriticalRecord]) -> list[CriticalToken]:
    """``task``'s critical records (from :meth:`Task.target`) as tokens with their kinds named."""
    kinds = task.critical_kinds
    return [CriticalToken(r[0], r[1], r[2], r[3], kinds[r[4]]) for r in records]  # type: ignore[arg-type]


def critical_positions(task: str | Task, problem: ProblemKey, comfort_digits: int, length: int) -> np.ndarray:
    """Bool mask of the first ``length`` target positions of ``problem``: True at a critical token."""
    mask = np.zeros(length, dtype=bool)
    positions = [t.position for t in critical_tokens_of(task, problem, comfort_digits)]
    mask[[position for position in positions if position < length]] = True
    return mask


def first_deviation(text: str, target: str) -> int | None:
    """Index of the first character where ``text`` leaves ``target`` (None if it never does)."""
    for index, (written, expected) in enumerate(zip(text, target, strict=False)):
        if written != expected:
            return index
    # A text that stops early (pad played) or runs on leaves the target where the shorter one ends.
    return None if len(text) == len(target) else min(len(text), len(target))


STRUCTURAL_ERROR_KINDS: tuple[str, ...] = ("critical", "other")
"""Where a text first goes wrong, for a task without finer kinds: at a structural critical token or not."""


def error_kinds(task: str | Task) -> tuple[str, ...]:
    """The kinds :func:`error_kind` names for ``task``."""
    return getattr(get_task(task), "error_kinds", STRUCTURAL_ERROR_KINDS)


def error_kind(
    task: str | Task, problem: ProblemKey, comfort_digits: int, text: str, codec: object = None
) -> str | None:
    """The kind of ``text``'s first wrong token (None: it follows the target to its end); ``critical``
    for a structural critical token on every task.

    With a tokenizer's ``codec`` (one with ``offsets``, :class:`arith_gym.codec.TokenizerCodec`) the
    token is the target's canonical token holding the first wrong character, and it is ``critical``
    when it covers a critical character: a byte-level BPE fuses a digit with the comma after it
    (``6,``), so a model that closes the list early goes wrong at the digit of that token.
    """
    task = get_task(task)
    target, records = task.target(problem, comfort_digits)
    where = first_deviation(text, target)
    if where is None:
        return None
    critical = {record[0] for record in records}
    if codec is not None and hasattr(codec, "offsets"):
        span = next(((start, end) for start, end in codec.offsets(target) if start <= where < end), None)
        if span is not None and any(span[0] <= position < span[1] for position in critical):
            return "critical"
    if hasattr(task, "error_kind"):
        return task.error_kind(problem, comfort_digits, text)
    return "critical" if where in critical else "other"

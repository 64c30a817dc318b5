"""The fixed held-out evaluation sets: the same problems for every method, seed and algorithm.

An :class:`EvalSet` holds, for ``comfort`` and one harder split, problems drawn once with a
seed from the held-out part of the problem space (:func:`arith_gym.operands.is_heldout`, which
RL training never draws from). Every run of a comparison evaluates on the same problems, so
differences between runs are paired problem by problem; intermediate evaluations use a prefix,
the final one all of them. The default sizes put one run's binomial 95% interval within about
±5 points on the harder split (400 problems) and ±7 on comfort (200).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from arith_gym.task import ProblemKey, get_task, is_heldout_key, task_problems

EVAL_SET_FILE = "eval_set.json"


@dataclass(frozen=True)
class EvalSet:
    """Held-out problems of ``task`` per split name (``comfort`` and e.g. ``plus1``), in a fixed order."""

    comfort_digits: int
    seed: int
    problems: dict[str, tuple[ProblemKey, ...]]
    task: str = "Addition"

    def head(self, split: str, count: int | None = None) -> list[ProblemKey]:
        """The first ``count`` problems of ``split`` (all of them for None)."""
        if split not in self.problems:
            raise ValueError(f"this evaluation set has no {split!r} problems, only {sorted(self.problems)}")
        problems = self.problems[split]
        return list(problems if count is None else problems[:count])

    def to_json(self) -> str:
        data: dict[str, object] = {"comfort_digits": self.comfort_digits, "seed": self.seed}
        data["problems"] = {name: [list(pair) for pair in pairs] for name, pairs in self.problems.items()}
        if self.task != "Addition":  # addition's sets stay byte-identical to those saved before tasks
            data["task"] = self.task
        return json.dumps(data) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalSet:
        """Read a saved set; a file that is not one is a one-line ``ValueError`` naming it."""
        try:
            data = json.loads(Path(path).read_text())
            task = get_task(str(data.get("task", "Addition")))
            problems = {
                name: tuple(task.check(problem) for problem in problems)
                for name, problems in data["problems"].items()
            }
            return cls(int(data["comfort_digits"]), int(data["seed"]), problems, task.name)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: not an evaluation set ({type(err).__name__}: {err})") from None


def heldout_eval_set(
    comfort_digits: int,
    split: str,
    problems: int = 400,
    comfort_problems: int = 200,
    seed: int = 0,
    task: str = "Addition",
) -> EvalSet:
    """``problems`` held-out problems of ``task``'s ``split`` and ``comfort_problems`` of ``comfort``,
    drawn with ``seed``: the same set at every call (and in every process)."""
    sizes = {"comfort": comfort_problems, split: problems} if split != "comfort" else {"comfort": problems}
    drawn = {
        name: tuple(task_problems(task, name, comfort_digits, count, seed, problem_set="heldout"))
        for name, count in sizes.items()
    }
    return EvalSet(comfort_digits, seed, drawn, get_task(task).name)


def check_disjoint(eval_set: EvalSet, training_problems: list[ProblemKey]) -> None:
    """A ``ValueError`` if a training problem is in the evaluation set or is held out at all."""
    held = {pair for pairs in eval_set.problems.values() for pair in pairs}
    task = get_task(eval_set.task)
    leaked = [pair for pair in training_problems if pair in held or is_heldout_key(task.key(pair))]
    if leaked:
        raise ValueError(f"training played held-out problems, e.g. {leaked[0]} ({len(leaked)} in all)")

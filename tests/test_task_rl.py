"""RL on every task: each backend trains on a Multiply or MultiSum reference, evaluates on that
task's held-out problems and saves a model that still records its task (docs/tasks.md)."""

from __future__ import annotations

import json

import pytest

from agents.backends import backend_for
from agents.evaluation.heldout import EvalSet
from agents.lm.model import TaskInfo, build_model, load_reference, save_reference, shipped_references
from agents.rl.sampling import grouped_operands
from agents.rundir import read_metrics
from arith_gym.operands import sample_operands
from arith_gym.task import get_task, is_heldout_key

pytestmark = pytest.mark.filterwarnings(
    "ignore:`[a-z_]*gradient_checkpointing[a-z_]*` is deprecated:FutureWarning"
)


@pytest.fixture(scope="module", params=["Multiply", "MultiSum"])
def task_reference(request, tmp_path_factory):
    """A micro reference of the task at N = 2 (random weights: only the plumbing is under test)."""
    task = get_task(request.param)
    out = tmp_path_factory.mktemp(f"micro-{task.name}")
    model = build_model("micro", seed=0, vocab_size=task.vocab_size).eval()
    return save_reference(model, out, TaskInfo(comfort_digits=2, size="micro", task=task.name))


@pytest.mark.parametrize(
    ("algo", "method"),
    [("ppo", "oracle_critical"), ("grpo", "critical_auto"), ("sb3-ppo", "critical"), ("trl-grpo", "uniform")],
)
def test_every_backend_trains_on_a_task_reference(task_reference, algo, method, tiny_rl, tmp_path):
    name = load_reference(task_reference)[1].task
    backend = backend_for(algo)
    base = tiny_rl.with_overrides(group_size=2) if algo in ("grpo", "trl-grpo") else tiny_rl
    config = backend.job_config(base, algo, method)
    run = backend.train(config, tmp_path / "run", task_reference, algo)
    eval_set = EvalSet.load(run / "eval_set.json")
    assert eval_set.task == name and len(eval_set.head("plus1")) == 4
    task = get_task(name)
    assert all(is_heldout_key(task.key(problem)) for problem in eval_set.head("plus1"))
    assert json.loads((run / "eval_set.json").read_text())["task"] == name
    row = read_metrics(run)[-1]
    assert row["plus1_problems"] == 4 and "plus1_errors/critical" in row and "plus1_errors/other" in row
    model, info = load_reference(run / "checkpoint")
    assert (info.task, model.config.vocab_size) == (name, task.vocab_size)


def test_grouped_problems_come_from_the_task_and_never_from_the_held_out_set():
    problems = grouped_operands(7, "plus1", 3, problems=50, group_size=2, task="MultiSum")
    task = get_task("MultiSum")
    assert problems[::2] == problems[1::2] and all(len(problem) >= 2 for problem in problems)
    assert not any(is_heldout_key(task.key(problem)) for problem in problems)


def test_addition_groups_are_the_draws_they_always_were():
    import numpy as np

    rng = np.random.default_rng(3)
    expected = [sample_operands(rng, "plus1", 3, problem_set="train") for _ in range(5)]
    assert grouped_operands(3, "plus1", 3, problems=5, group_size=1) == expected


def test_the_trl_dataset_holds_any_task():
    pytest.importorskip("trl")
    from agents.trl.task import problem_dataset, task_reward

    multiply = problem_dataset("plus1", 3, 4, seed=0, task="Multiply")
    assert (
        multiply.column_names == ["prompt", "problem", "operands", "answer"] and "*" in multiply["prompt"][0]
    )
    task = get_task("Multiply")
    a, d = (int(part) for part in multiply["problem"][0].split("*"))
    assert multiply["operands"][0] == f"{a} {d}"
    target = task.target((a, d), 3)[0]
    assert task_reward([target, target[:-3] + "\n"], multiply["answer"][:1] * 2) == [1.0, 0.0]
    addition = problem_dataset("plus1", 3, 2, seed=0)
    assert addition.column_names == ["prompt", "problem", "operands", "a", "b", "answer"]


def test_compare_tasks_picks_the_shipped_references_of_each_task():
    paths = shipped_references(["addition", "Multiply"])
    infos = [load_reference(path)[1] for path in paths]
    assert [info.task for info in infos] == ["Addition"] * 3 + ["Multiply"] * 2
    assert [info.comfort_digits for info in infos] == [2, 3, 4, 3, 4]
    assert all(info.tokenizer == "characters" for info in infos)  # not the BPE reference of addition
    with pytest.raises(ValueError, match="unknown task 'subtraction'"):
        shipped_references(["subtraction"])

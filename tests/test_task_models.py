"""Models of any task: pre-training batches, model cards, and episodes played through the task's env."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.lm.batches import IGNORE_INDEX, make_batch
from agents.lm.decoding import GREEDY
from agents.lm.episodes import play_episodes
from agents.lm.model import CheckpointError, TaskInfo, build_model, load_reference, load_task_info
from agents.lm.pretrain import PretrainConfig, pretrain
from arith_gym.task import first_deviation, get_task
from arith_gym.tokenizer import encode


def test_a_glimpse_problem_leaves_the_tasks_decisions_unscored():
    problem = (1234, 7)
    batch = make_batch([problem], unscored_critical_of=3, task="Multiply")
    prompt = len("Input:\n1234*7\nTarget:\n")
    text, records = get_task("Multiply").target(problem, 3)
    labels = batch["labels"][0, prompt : prompt + len(text)]
    unscored = (labels == IGNORE_INDEX).nonzero().squeeze(1).tolist()
    assert unscored == [record[0] for record in records] == [text.index("1*7")]
    assert make_batch([problem], task="Multiply")["labels"][0, prompt:].ne(IGNORE_INDEX).sum() == len(text)


def test_addition_batches_are_what_they_were():
    problems = [(95, 8), (1234, 5678)]
    batch = make_batch(problems, unscored_critical_of=3, unscored_kinds=frozenset({"comma"}))
    from arith_gym.scratchpad import critical_tokens, prompt_text, target_text

    for row, (a, b) in enumerate(problems):
        prompt, target = encode(prompt_text(a, b)), encode(target_text(a, b))
        expected = target.copy()
        for token in critical_tokens(a, b, 3):
            if token.kind == "comma":
                expected[token.position] = IGNORE_INDEX
        labels = batch["labels"][row, len(prompt) : len(prompt) + len(target)].numpy()
        assert np.array_equal(labels, expected)


def test_a_card_without_a_task_is_addition_and_an_unknown_task_is_named(micro_reference_dir, tmp_path):
    assert load_task_info(micro_reference_dir).task == "Addition"
    card = json.loads((micro_reference_dir / "arith_gym.json").read_text())
    assert "task" in card or TaskInfo(**card).task == "Addition"
    with pytest.raises(ValueError, match="unknown task 'Division'"):
        TaskInfo(comfort_digits=2, task="Division")


@torch.no_grad()
def _greedy_by_whole_context(model, task, problem, comfort_digits, split):
    from arith_gym.task_env import TaskEnv

    env = TaskEnv(task, comfort_digits, split)
    _, info = env.reset(options={"problem": problem})
    ids = list(encode(info["prompt"]))
    while True:
        token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        _, _, terminated, truncated, info = env.step(token)
        if terminated or truncated:
            return info["text"]
        ids.append(token)


@pytest.mark.parametrize("name", ["Multiply", "MultiSum", "Addition"])
def test_cached_batched_episodes_equal_whole_context_greedy_decoding(name):
    task = get_task(name)
    model = build_model("micro", seed=1, vocab_size=task.vocab_size).eval()
    rng = np.random.default_rng(0)
    problems = [task.sample(rng, "plus1", 2, "all") for _ in range(4)]
    _, texts = play_episodes(model, problems, 2, "plus1", GREEDY, batch_size=3, task=task)
    for problem, text in zip(problems, texts, strict=True):
        assert text == _greedy_by_whole_context(model, task, problem, 2, "plus1")


def test_pretraining_a_multiply_model_records_its_task_and_vocabulary(tmp_path):
    config = PretrainConfig(
        task="Multiply", comfort_digits=2, size="micro", steps=2, batch_size=4, eval_every=2, eval_problems=2
    )
    pretrain(config, tmp_path, progress=False)
    model, info = load_reference(tmp_path)
    assert info.task == "Multiply" and model.config.vocab_size == 42
    (tmp_path / "arith_gym.json").write_text(json.dumps({"comfort_digits": 2}))  # now claims addition
    with pytest.raises(CheckpointError, match="model vocabulary has 42 tokens but the task's has 41"):
        load_reference(tmp_path)


def test_the_gate_counts_failures_first_wrong_at_a_decision(monkeypatch):
    from agents.evaluation import task_gate as gate_module

    multiply = get_task("Multiply")

    def played(model, problems, comfort_digits, split, temperature, generator=None, batch=64, **_):
        if split == "comfort":
            return np.ones(len(problems), dtype=bool), [""] * len(problems)
        texts = []
        for i, problem in enumerate(problems):
            target, records = multiply.target(problem, 2)
            decision = records[0][0]
            if i % 3 == 0:
                texts.append(target)  # solved
            elif i % 3 == 1:
                texts.append(target[:decision] + "C=0 , END\n")  # closed at the comfort zone
            else:
                texts.append(target[:1] + "9")  # wrong at the first digit
        return np.array([i % 3 == 0 for i in range(len(problems))]), texts

    monkeypatch.setattr(gate_module, "play_episodes", played)
    result = gate_module.task_gate(build_model("micro", vocab_size=42), "Multiply", 2, 1.0, problems=3)
    assert (result.comfort_greedy, result.failures, result.first_wrong_at_critical) == (1.0, 2, 0.5)
    assert not result.passed and "does not pass" in result.markdown()
    assert first_deviation("abcd", "abxd") == 2 and first_deviation("ab", "abc") == 2
    assert first_deviation("abc", "abc") is None


@pytest.mark.parametrize(
    ("directory", "name", "digits", "vocab_size"),
    [
        ("gpt2-tiny-multiply-n3", "Multiply", 3, 42),
        ("gpt2-tiny-multiply-n4", "Multiply", 4, 42),
        ("gpt2-tiny-multisum-n3", "MultiSum", 3, 41),
        ("gpt2-tiny-multisum-n4", "MultiSum", 4, 41),
    ],
)
def test_the_shipped_task_references_load_and_solve_their_comfort_zone(directory, name, digits, vocab_size):
    from agents.lm.model import CHECKPOINTS_DIR

    model, info = load_reference(CHECKPOINTS_DIR / directory)
    assert (info.task, info.comfort_digits, model.config.vocab_size) == (name, digits, vocab_size)
    task = get_task(name)
    rng = np.random.default_rng(0)
    problems = [task.sample(rng, "comfort", digits, "heldout") for _ in range(32)]
    solved, _ = play_episodes(model, problems, digits, "comfort", GREEDY, task=task)
    assert solved.all()  # their cards: 100.0 %, 100.0 %, 99.9 % and 100.0 % greedy comfort on 1000


@pytest.mark.parametrize("name", ["Multiply", "MultiSum"])
def test_the_certainty_gap_and_the_finder_take_any_task(name):
    from agents.evaluation.certainty_gap import certainty_gap
    from agents.evaluation.finder import find_critical_tokens

    task = get_task(name)
    model = build_model("micro", seed=2, vocab_size=task.vocab_size).eval()
    gap = certainty_gap(model, 2, episodes=6, source="target", task=name)
    assert gap.used == 6 and np.isfinite(gap.gap)  # every plus1 target holds its decisions
    report = find_critical_tokens(
        model, 2, episodes=1, samples=2, source="target", positions="all", task=name
    )
    target, records = task.target(_first_plus1_problem(name), 2)
    assert report.structural.sum() == len(records) and len(report.token) == len(target)


def _first_plus1_problem(name):
    rng = np.random.default_rng(0)
    return get_task(name).sample(rng, "plus1", 2, "all")

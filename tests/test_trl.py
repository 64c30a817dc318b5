"""The TRL integration (agents/trl/): weights, loss, one GRPO step, the reward function, the extra."""

from __future__ import annotations

import importlib
import os
import sys

import gymnasium as gym
import pytest
import torch

pytest.importorskip("trl")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# TRL 1.16 still calls transformers' deprecated `gradient_checkpointing` names itself.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`[a-z_]*gradient_checkpointing[a-z_]*` is deprecated:FutureWarning"
)

from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from agents import MissingExtra  # noqa: E402
from agents.kl import certainty, prioritized_weights  # noqa: E402
from agents.lm.model import CHECKPOINTS_DIR, load_reference  # noqa: E402
from agents.trl import (  # noqa: E402
    WeightedKLGRPOTrainer,
    addition_reward,
    load_tokenizer,
    prepare_model,
    problem_dataset,
)
from arith_gym import ENV_ID, encode  # noqa: E402
from arith_gym.operands import is_heldout  # noqa: E402
from arith_gym.scratchpad import prompt_text, target_text  # noqa: E402


def _trainer(
    reference_dir, tmp_path, reward=addition_reward, comfort_digits=1, **kwargs
) -> WeightedKLGRPOTrainer:
    model, _ = load_reference(reference_dir)
    options = dict(kl_weighting="critical", kl_beta=2.0, certainty_temperature=1.0)
    options.update(
        {k: kwargs.pop(k) for k in list(kwargs) if k in ("kl_weighting", "kl_beta", "critical_labels")}
    )
    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=40,
        learning_rate=1e-2,
        beta=0.5,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        seed=0,
        **kwargs,
    )
    return WeightedKLGRPOTrainer(
        model=prepare_model(model),
        reward_funcs=reward,
        train_dataset=problem_dataset("plus1", comfort_digits, 16),
        args=args,
        processing_class=load_tokenizer(reference_dir),
        **options,
    )


def _batch(trainer) -> dict:
    rows = [trainer.train_dataset[i] for i in range(2)]
    torch.manual_seed(0)
    return trainer._generate_and_score_completions([row for row in rows for _ in range(2)])


def test_weights_equal_agents_kl_computed_episode_by_episode(micro_reference_dir, tmp_path):
    trainer = _trainer(micro_reference_dir, tmp_path)
    batch = _batch(trainer)
    weights = batch["kl_weights"]
    reference, _ = load_reference(micro_reference_dir)
    for row in range(weights.shape[0]):
        prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()]
        completion = batch["completion_ids"][row][batch["completion_mask"][row].bool()]
        ids = torch.cat([prompt, completion])[None]
        with torch.no_grad():  # no padding at all: positions 0, 1, 2, ...
            logits = reference(input_ids=ids).logits[0, len(prompt) - 1 : -1]
        expected = prioritized_weights(certainty(logits, 1.0, "negentropy"), 2.0, 0.0)
        torch.testing.assert_close(weights[row, : len(completion)], expected, atol=1e-6, rtol=0)
        # TRL's own reference log-probs see the same positions (its reference is loaded afresh).
        ref_logps = torch.log_softmax(logits, -1).gather(-1, completion[:, None]).squeeze(-1)
        torch.testing.assert_close(
            batch["ref_per_token_logps"][row, : len(completion)], ref_logps, atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo"])
def test_uniform_weights_give_trl_s_own_loss(micro_reference_dir, tmp_path, loss_type):
    trainer = _trainer(micro_reference_dir, tmp_path, kl_weighting="uniform", loss_type=loss_type)
    batch = _batch(trainer)
    with torch.no_grad():  # move the policy off the reference so that the KL is not 0
        for parameter in trainer.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    trainer.model.eval()
    ours = trainer._compute_loss(trainer.model, batch)
    trl_own = GRPOTrainer._compute_loss(trainer, trainer.model, batch)
    assert ours.item() == pytest.approx(trl_own.item(), rel=1e-6, abs=1e-7)
    assert trainer._metrics["eval"]["kl"][-1] > 0


def _length_parity(completions, **_):
    """A reward with signal even for a random model: whether the completion has even length."""
    return [float(len(c) % 2 == 0) for c in completions]


def test_one_grpo_step_changes_the_weights_and_logs_the_weighted_kl(micro_reference_dir, tmp_path):
    trainer = _trainer(micro_reference_dir, tmp_path, reward=_length_parity, max_steps=3)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    logged = [row for row in trainer.state.log_history if "weighted_kl" in row]
    assert len(logged) == 3 and all(0.0 <= row["mean_kl_weight"] <= 1.0 for row in logged)
    assert logged[-1]["kl"] > 0 and logged[-1]["weighted_kl"] <= logged[-1]["kl"]


def test_the_reward_agrees_with_the_env(micro_reference_dir):
    env = gym.make(ENV_ID, comfort_digits=3, split="plus1")
    _, info = env.reset(seed=0)
    target, answer = info["target"], str(info["a"] + info["b"])
    for token in encode(target):
        _, reward, terminated, _, info = env.step(int(token))
    assert terminated and info["correct"] and addition_reward([target], [answer]) == [reward] == [1.0]
    # A corrupted result digit: the env and the reward both say wrong.
    last = target.rstrip("\n")[-1]
    corrupted = target[: len(target) - 2] + str((int(last) + 1) % 10) + "\n"
    _, info = env.reset(options={"operands": (info["a"], info["b"])})
    for token in encode(corrupted):
        _, reward, terminated, _, info = env.step(int(token))
    assert terminated and not info["correct"] and addition_reward([corrupted], [answer]) == [reward] == [0.0]
    # What follows the result line is not part of the episode; a text that never ends it scores 0.
    assert addition_reward([target + "7 7\n"], [answer]) == [1.0]
    assert addition_reward([target[:-1]], [answer]) == [0.0]


def test_critical_labels_are_the_env_s_labels_of_each_step():
    from agents.trl import CriticalLabels
    from arith_gym.task import critical_positions

    labels = CriticalLabels("Addition", comfort_digits=2, split="plus1")
    problem = (123, 45)  # a third digit: decision commas past N = 2
    target = target_text(*problem)
    ids = [int(t) for t in encode(target)] + [40, 40]  # the forced end-of-sequence after the episode
    expected = critical_positions("Addition", problem, 2, len(target)).tolist() + [False, False]
    assert sum(expected) > 0 and labels("123 45", ids) == expected
    # Off track at the first decision (closing the list early): nothing after it is critical.
    first = expected.index(True)
    wrong = ids[:first] + [int(encode("]")[0])] + ids[first + 1 :]
    assert labels("123 45", wrong) == [*expected[: first + 1], *([False] * (len(ids) - first - 1))]
    outside = [*ids[:first], 10_000, *ids[first:]]  # an id past the vocabulary ends the replay
    assert labels("123 45", outside) == [*expected[:first], *([False] * (len(ids) - first + 1))]


def test_oracle_critical_under_trl_zeroes_the_kl_exactly_at_the_env_s_critical_tokens(
    micro_reference_dir, tmp_path
):
    from agents.trl import CriticalLabels

    with pytest.raises(ValueError, match="'oracle_critical' needs what the TRL backend") as refused:
        _trainer(micro_reference_dir, tmp_path, kl_weighting="oracle_critical")  # no labels: no env
    assert "\n" not in str(refused.value)
    labels = CriticalLabels("Addition", comfort_digits=1, split="plus1")
    with pytest.raises(ValueError, match="needs an 'operands' column"):
        WeightedKLGRPOTrainer(
            model=prepare_model(load_reference(micro_reference_dir)[0]),
            reward_funcs=addition_reward,
            train_dataset=problem_dataset("plus1", 1, 4).remove_columns("operands"),
            args=GRPOConfig(
                output_dir=str(tmp_path / "x"),
                use_cpu=True,
                report_to=[],
                num_generations=2,
                per_device_train_batch_size=2,
            ),
            processing_class=load_tokenizer(micro_reference_dir),
            kl_weighting="oracle_critical",
            critical_labels=labels,
        )
    # The shipped N = 3 reference copies its lists on track to the decisions.
    shipped = CHECKPOINTS_DIR / "gpt2-tiny-n3"
    labels = CriticalLabels("Addition", comfort_digits=3, split="plus1")
    trainer = _trainer(
        shipped, tmp_path, comfort_digits=3, kl_weighting="oracle_critical", critical_labels=labels
    )
    rows = [trainer.train_dataset[i] for i in range(4)]
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions([row for row in rows for _ in range(4)])
    mask = batch["completion_mask"].bool()
    expected = torch.tensor(
        [
            labels(row["operands"], ids[: int(n)]) + [False] * (len(ids) - int(n))
            for row, ids, n in zip(
                [row for row in rows for _ in range(4)],
                batch["completion_ids"].tolist(),
                mask.sum(1).tolist(),
                strict=True,
            )
        ]
    )
    weights = batch["kl_weights"]
    assert expected.any()
    torch.testing.assert_close(weights, ((~expected) & mask).float())


def test_the_dataset_holds_training_problems_only():
    data = problem_dataset("plus1", 3, 200, seed=4)
    assert data.column_names == ["prompt", "problem", "operands", "a", "b", "answer"]
    assert data["operands"][0] == f"{data['a'][0]} {data['b'][0]}"
    assert data["problem"][0] == f"{data['a'][0]}+{data['b'][0]}"
    assert not any(is_heldout(int(a), int(b)) for a, b in zip(data["a"], data["b"], strict=True))
    assert data["prompt"][0] == f"Input:\n{data['a'][0]}+{data['b'][0]}\nTarget:\n"


def test_generate_ends_each_row_at_its_result_line():
    # Force the right answer token by token: generation must stop after the result line.
    from agents.trl import EndEpisodes

    prompt, target = prompt_text(3, 4), target_text(3, 4)
    processor = EndEpisodes()
    ids = torch.as_tensor(encode(prompt))[None]
    scores = torch.zeros(1, 41)
    processor(ids, scores.clone())
    for token in encode(target):
        ids = torch.cat([ids, torch.tensor([[int(token)]])], dim=1)
        out = processor(ids, torch.zeros(1, 41))
    assert out[0].argmax().item() == 40 and torch.isinf(out[0, :40]).all()  # only the EOS (pad) is left


def test_without_trl_a_clear_error_says_how_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "agents.trl" or m.startswith("agents.trl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(MissingExtra, match=r"pip install 'arith-gym\[trl\]'"):
        importlib.import_module("agents.trl")


def test_compare_runs_trl_grpo_beside_agents_grpo_on_the_same_problems(micro_reference_dir, tmp_path):
    from agents.experiments.compare import compare
    from agents.experiments.jobs import CompareSettings

    overrides = (("episodes_per_update", 8), ("total_episodes", 16), ("eval_every", 1), ("eval_episodes", 4))
    overrides += (("final_eval_episodes", 4), ("final_comfort_episodes", 4), ("group_size", 4))
    overrides += (("eval_greedy", False), ("value_hidden", (8,)))
    settings = CompareSettings(
        methods=("critical",),
        seeds=(0,),
        algos=("trl-grpo", "grpo"),
        overrides=overrides,
        reference=str(micro_reference_dir),
    )
    summary = compare(settings, tmp_path, workers=2, progress=False, passk_samples=2, passk_problems=2)
    text = summary.read_text()
    assert "| trl-grpo:critical | 1 |" in text and "| grpo:critical | 1 |" in text
    with (tmp_path / "evaluations.csv").open() as handle:
        import csv

        rows = list(csv.DictReader(handle))
    assert {(r["algo"], r["episodes"]) for r in rows} == {
        (algo, str(e)) for algo in ("trl-grpo", "grpo") for e in (0, 8, 16)
    }
    assert (tmp_path / "eval_set.json").is_file()  # both evaluated on the same held-out problems
    assert load_reference(tmp_path / "runs" / "trl-grpo-critical-s0" / "checkpoint")[1].comfort_digits == 1


def test_trl_refuses_what_it_cannot_express():
    from agents.rl.config import PRESETS
    from agents.trl.train import check_trl_config, trl_config

    config = trl_config(PRESETS["cpu"])
    check_trl_config(config)
    for bad, message in (
        ({"kl_estimator": "k2"}, "kl_estimator='k2'"),
        ({"kl_weighting": "value_jump"}, "value_jump"),
        ({"advantage": "rloo"}, "'rloo'"),
    ):
        with pytest.raises(ValueError, match=message):
            check_trl_config(config.with_overrides(**bad))

"""Named algorithms, group sampling, DAPO's dynamic sampling and plug-ins (agents/rl/algorithms.py,
sampling.py, registry.py) on a micro model."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import agents.rl.sampling as sampling_module
from agents.rl.algorithms import ALGORITHMS, apply_algorithm, check_config
from agents.rl.config import RLConfig
from agents.rl.methods import apply_method
from agents.rl.registry import Registry, load_plugin
from agents.rl.sampling import constant_groups, grouped_operands, sample_batch
from agents.rl.trainer import Trainer
from agents.rl.update import KLController, policy_update

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "entropy_lift.py"
NAMED = (
    "ppo",
    "a2c",
    "grpo",
    "dr_grpo",
    "rloo",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "dapo",
    "gspo",
    "cispo",
)
WEIGHTINGS = ("none", "uniform", "critical", "critical_max_prob", "oracle_critical")
MICRO = RLConfig(
    lr=1e-3,
    episodes_per_update=8,
    total_episodes=16,
    minibatches=2,
    update_epochs=2,
    eval_every=1,
    eval_episodes=4,
    eval_greedy=False,
    value_hidden=(8,),
    split="comfort",
)


def _micro(algo: str) -> RLConfig:
    """Algorithm ``algo`` at micro scale: groups of 4 where the algorithm groups episodes."""
    config = apply_algorithm(MICRO, algo)
    return config.with_overrides(group_size=4) if ALGORITHMS[algo].group_size > 1 else config


@pytest.fixture(scope="module")
def batches(micro_reference_dir, tmp_path_factory):
    """One trainer and one scored batch per named algorithm (the policy still the rollout's)."""
    out = {}
    for algo in NAMED:
        trainer = Trainer(_micro(algo), micro_reference_dir, tmp_path_factory.mktemp(algo))
        rollout, stats = sample_batch(
            trainer.policy, trainer.reference, trainer.env, trainer.generator, seed=0,
            group_size=trainer.pieces.group_size, certainty_temperature=1.0,
        )  # fmt: skip
        out[algo] = trainer, rollout, stats
    return out


def test_every_algorithm_in_the_issue_is_registered():
    assert set(NAMED) <= set(ALGORITHMS)


@pytest.mark.parametrize("algo", NAMED)
@pytest.mark.parametrize("method", WEIGHTINGS)
def test_each_algorithm_updates_with_each_kl_weighting_and_its_first_ratio_is_one(batches, algo, method):
    trainer, rollout, _ = batches[algo]
    config = apply_method(trainer.config, method)
    policy = copy.deepcopy(trainer.policy)
    before = [p.detach().clone() for p in policy.lm.parameters()]
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    stats = policy_update(
        policy, optimizer, rollout, config, KLController(1.0), torch.Generator().manual_seed(0)
    )
    assert stats["first_ratio_max_error"] < 1e-5  # the first minibatch sees the rollout's own policy
    assert all(np.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.lm.parameters(), strict=True))


@pytest.mark.parametrize("algo", NAMED)
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "full"])
@pytest.mark.parametrize("kl_in", ["loss", "reward"])
def test_each_algorithm_takes_each_kl_estimator_in_the_loss_or_the_reward(batches, algo, estimator, kl_in):
    trainer, rollout, _ = batches[algo]
    config = trainer.config.with_overrides(kl_weighting="uniform", kl_estimator=estimator, kl_in=kl_in)
    policy = copy.deepcopy(trainer.policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    stats = policy_update(policy, optimizer, rollout, config, KLController(1.0))
    assert np.isfinite(stats["loss"]) and np.isfinite(stats["kl"])


def test_group_algorithms_train_no_value_head_and_ppo_does(batches):
    for algo, trains_critic in (("ppo", True), ("grpo", False), ("reinforce_pp", False)):
        trainer, rollout, _ = batches[algo]
        policy = copy.deepcopy(trainer.policy)
        head = [p.detach().clone() for p in policy.value_head.parameters()]
        optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
        stats = policy_update(policy, optimizer, rollout, trainer.config, KLController(1.0))
        moved = any(not torch.equal(a, b) for a, b in zip(head, policy.value_head.parameters(), strict=True))
        assert moved == trains_critic and ("value_loss" in stats) == trains_critic


# ----------------------------------------------------------------------------- group sampling


def test_grouped_operands_repeat_each_problem_g_times_reproducibly():
    operands = grouped_operands(7, "plus1", 3, problems=4, group_size=3)
    assert len(operands) == 12 and len(set(operands)) == 4
    assert all(operands[i] == operands[i // 3 * 3] for i in range(12))
    assert operands == grouped_operands(7, "plus1", 3, problems=4, group_size=3)
    assert all(max(len(str(a)), len(str(b))) == 4 for a, b in operands)  # plus1 of N = 3


def test_a_group_rollout_plays_each_problem_g_times_side_by_side(batches):
    _, rollout, stats = batches["grpo"]
    prompts = [tuple(p) for p in rollout.prompts()]
    assert rollout.groups.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert prompts[0] == prompts[3] and prompts[4] == prompts[7] and prompts[0] != prompts[4]
    assert stats.sampled_episodes == 8 and stats.kept_groups == 2 and stats.dropped_groups == 0


def test_constant_groups_marks_exactly_the_groups_with_equal_rewards(batches):
    _, rollout, _ = batches["grpo"]
    last = rollout.mask.sum(dim=1) - 1
    rewards = torch.zeros_like(rollout.rewards)
    rewards[torch.arange(8), last] = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    rollout = dataclasses.replace(rollout, rewards=rewards)
    assert constant_groups(rollout).tolist() == [True] * 4 + [False] * 4


def test_dynamic_sampling_drops_exactly_the_constant_groups_and_counts_every_episode(batches, monkeypatch):
    trainer, _, _ = batches["dapo"]
    real = sampling_module.collect_rollout
    # Round 1: group 0 all right (dropped), group 1 mixed (kept); round 2: group 0 mixed (kept).
    patterns = iter([[1, 1, 1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]])

    def rigged(*args, **kwargs):
        rollout = real(*args, **kwargs)
        last = rollout.mask.sum(dim=1) - 1
        rewards = torch.zeros_like(rollout.rewards)
        rewards[torch.arange(8), last] = torch.tensor(next(patterns), dtype=torch.float32)
        return dataclasses.replace(rollout, rewards=rewards)

    monkeypatch.setattr(sampling_module, "collect_rollout", rigged)
    rollout, stats = sample_batch(
        trainer.policy, trainer.reference, trainer.env, trainer.generator, seed=3,
        group_size=4, dynamic_sampling=True, max_rounds=4, certainty_temperature=1.0,
    )  # fmt: skip
    assert (stats.sampled_episodes, stats.rounds, stats.dropped_groups, stats.kept_groups) == (16, 2, 2, 2)
    scores = (rollout.rewards * rollout.mask).sum(dim=1)
    assert scores.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # round 1's group 1, round 2's group 0
    assert not constant_groups(rollout).any()
    assert rollout.ref_logp is not None and rollout.ref_logp.shape == rollout.logp.shape


def test_dynamic_sampling_gives_up_after_its_rounds_and_says_so(batches, monkeypatch):
    trainer, _, _ = batches["dapo"]
    real = sampling_module.collect_rollout

    def all_wrong(*args, **kwargs):
        rollout = real(*args, **kwargs)
        return dataclasses.replace(rollout, rewards=torch.zeros_like(rollout.rewards))

    monkeypatch.setattr(sampling_module, "collect_rollout", all_wrong)
    rollout, stats = sample_batch(
        trainer.policy, trainer.reference, trainer.env, trainer.generator, seed=3,
        group_size=4, dynamic_sampling=True, max_rounds=3,
    )  # fmt: skip
    assert (stats.sampled_episodes, stats.rounds, stats.dropped_groups, stats.kept_groups) == (24, 3, 6, 0)
    assert rollout.actions.shape[0] == 8  # it trains on the last rollout (zero advantages)


def test_a_dapo_run_counts_the_extra_episodes_against_the_budget(micro_reference_dir, tmp_path):
    trainer = Trainer(_micro("dapo").with_overrides(total_episodes=24), micro_reference_dir, tmp_path)
    trainer.run(progress=False)
    rows = [row for row in _metrics(tmp_path) if row.get("sampled_episodes")]
    spent = [int(float(row["sampled_episodes"])) for row in rows]
    assert sum(spent) == trainer.episodes >= 24 and all(n % 8 == 0 for n in spent)


def _metrics(run_dir):
    import csv

    with (Path(run_dir) / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- registry and plug-ins


def test_a_registry_refuses_a_duplicate_and_lists_its_names_for_an_unknown_one():
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        registry.add("a", 2)
    with pytest.raises(ValueError, match="unknown widget 'b'; registered: a"):
        registry["b"]


def test_a_plugin_registers_its_names_once_and_a_second_file_cannot_take_them(tmp_path):
    load_plugin(PLUGIN)
    load_plugin(PLUGIN)  # the same file again: nothing happens (a Ray worker may run several jobs)
    config = apply_method(apply_algorithm(RLConfig(episodes_per_update=64), "sign_grpo"), "entropy_lift")
    assert check_config(config).advantage == "sign_grpo"
    copy_of_it = tmp_path / "again.py"
    copy_of_it.write_text(PLUGIN.read_text())
    with pytest.raises(ValueError, match=r"again.py: ValueError: KL weighting 'entropy_lift' is already"):
        load_plugin(copy_of_it)


def test_a_bad_plugin_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(ValueError, match="not a Python file"):
        load_plugin(tmp_path / "missing.py")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('oops')\n")
    with pytest.raises(ValueError, match=r"broken.py: RuntimeError: oops"):
        load_plugin(broken)


def test_the_example_plugin_runs_in_compare_on_the_local_pool(micro_reference_dir, tmp_path):
    from agents.experiments.compare import compare
    from agents.experiments.jobs import CompareSettings

    overrides = (("episodes_per_update", 8), ("total_episodes", 8), ("eval_every", 1), ("eval_episodes", 4))
    overrides += (("final_eval_episodes", 4), ("final_comfort_episodes", 4))
    overrides += (("eval_greedy", False), ("value_hidden", (8,)), ("group_size", 4))
    settings = CompareSettings(
        methods=("uniform", "entropy_lift"),
        seeds=(0,),
        algos=("sign_grpo",),
        overrides=overrides,
        reference=str(micro_reference_dir),
        plugins=(str(PLUGIN),),
    )
    compare(settings, tmp_path, workers=2, progress=False)  # spawned workers load the file themselves
    for method in ("uniform", "entropy_lift"):
        config = RLConfig.from_file(tmp_path / "runs" / f"sign_grpo-{method}-s0" / "config.json")
        assert config.algo == "sign_grpo" and config.group_size == 4
        rows = _metrics(tmp_path / "runs" / f"sign_grpo-{method}-s0")
        assert int(float(rows[-1]["episodes"])) == 8
    assert RLConfig.from_file(
        tmp_path / "runs" / "sign_grpo-entropy_lift-s0" / "config.json"
    ).kl_weighting == ("entropy_lift")


def test_cli_train_with_a_plugin_and_an_unknown_name(micro_reference_dir, tmp_path):
    base = [sys.executable, "-m", "agents.cli", "train", "--ref", str(micro_reference_dir)]
    tiny = ["--set", "group_size=4", "--set", 'split="comfort"', "--set", "eval_episodes=4"]
    tiny += ["--set", "value_hidden=[8]", "--set", "eval_greedy=false", "--episodes-per-update", "8"]
    tiny += ["--set", "final_eval_episodes=4", "--set", "final_comfort_episodes=4"]
    ok = subprocess.run(
        [*base, "--out", str(tmp_path / "run"), "--plugin", str(PLUGIN), "--algo", "sign_grpo"]
        + ["--method", "entropy_lift", "--total-episodes", "8", *tiny],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*base, "--out", str(tmp_path / "bad"), "--method", "entropy_lift"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"arith-rl train: error: unknown method 'entropy_lift'; registered: {', '.join(_builtin_methods())}"
        " (critical*@beta=B)"
    ]


def _builtin_methods() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", "from agents.rl.methods import METHODS; print(','.join(METHODS))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().split(",")

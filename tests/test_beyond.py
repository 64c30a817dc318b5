"""Template-free critical-token weightings (issue "beyond the paper"): the calibrated β of
``critical_auto`` (agents/rl/calibration.py) and the group forks (agents/rl/weightings.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from agents.kl import MAX_BETA
from agents.rl.calibration import beta_for_share, calibrated_beta
from agents.rl.config import RLConfig
from agents.rl.methods import apply_method, beta_sweep, method_settings
from agents.rl.trainer import Trainer
from agents.rl.weighting import TrainingProblems
from agents.rl.weightings import group_forks


def test_calibration_on_a_synthetic_certainty_with_a_known_answer():
    # u = -log J ~ Exponential(1): a share q of tokens has u > -log q, so beta = log 2 / (-log q).
    rng = np.random.default_rng(0)
    j = np.exp(-rng.exponential(1.0, size=200_000))
    for share in (0.05, 0.25):
        beta = beta_for_share(j, share)
        assert beta == pytest.approx(math.log(2) / -math.log(share), rel=0.02)
        assert np.mean(j**beta < 0.5) == pytest.approx(share, abs=0.005)


def test_calibration_by_hand_and_its_edges():
    # 8 tokens: J = 0.5 on two of them (u = log 2), 1 elsewhere. A share of 1/4: beta = 1 (0.5^1 = 1/2).
    assert beta_for_share([1, 1, 1, 0.5, 1, 1, 0.5, 1], 0.25) == pytest.approx(1.0)
    assert beta_for_share(np.ones(10), 0.1) == MAX_BETA  # a reference sure of everything
    with pytest.raises(ValueError, match="share must be in"):
        beta_for_share([0.5], 1.0)
    with pytest.raises(ValueError, match="non-empty array of values in"):
        beta_for_share([1.5], 0.1)


def test_critical_auto_calibrates_once_before_rl(micro_reference_dir, tmp_path):
    config = apply_method(
        RLConfig(
            episodes_per_update=4, total_episodes=4, eval_episodes=2, value_hidden=(8,), temperature=1.0
        ),
        "critical_auto",
    )
    first = Trainer(config, micro_reference_dir, tmp_path / "a")
    again = Trainer(config, micro_reference_dir, tmp_path / "b")
    assert first.config.beta == again.config.beta != config.beta  # deterministic, and not the default
    from agents.lm.model import load_reference

    reference, task = load_reference(micro_reference_dir)
    problems = TrainingProblems(task.comfort_digits, "plus1")
    expected = calibrated_beta(reference, problems, 1.0, 4.0, "negentropy", 0.25)
    assert first.config.beta == pytest.approx(expected)
    with pytest.raises(ValueError, match="only critical methods with a set"):
        method_settings("critical_auto@beta=10")
    assert beta_sweep(["critical", "critical_auto"], [10.0]) == ["critical@beta=10", "critical_auto"]


def _episodes(rows: list[tuple[int, list[int], float]]):
    steps = max(len(tokens) for _, tokens, _ in rows)
    actions = torch.zeros(len(rows), steps, dtype=torch.long)
    mask = torch.zeros(len(rows), steps, dtype=torch.bool)
    for i, (_, tokens, _) in enumerate(rows):
        actions[i, : len(tokens)] = torch.tensor(tokens)
        mask[i, : len(tokens)] = True
    groups = torch.tensor([group for group, _, _ in rows])
    scores = torch.tensor([score for _, _, score in rows])
    return actions, mask, groups, scores


def test_group_forks_by_hand():
    actions, mask, groups, scores = _episodes(
        [
            (0, [1, 2, 3], 1.0),  # group 0 forks at t = 2 (3 vs 4) with rewards 1 vs 0
            (0, [1, 2, 4], 0.0),
            (1, [1, 5, 3], 1.0),  # group 1 diverges at t = 1 but both are right: no fork
            (1, [1, 6, 3], 1.0),
            (2, [7, 7], 1.0),  # group 2 never diverges (one episode is longer): no fork
            (2, [7, 7, 8], 0.0),
            (3, [1, 2, 4], 1.0),  # the same tokens as group 0's episodes, another problem: no fork
        ]
    )
    forks = group_forks(actions, mask, groups, scores)
    assert forks.nonzero().tolist() == [[0, 2], [1, 2]]


def test_a_fork_is_judged_on_the_continuations_mean_reward():
    # Three episodes share [9]; at t = 1 two take 1 (rewards 1, 0: mean 0.5), one takes 2 (0.5): no fork.
    actions, mask, groups, scores = _episodes([(0, [9, 1], 1.0), (0, [9, 1], 0.0), (0, [9, 2], 0.5)])
    assert not group_forks(actions, mask, groups, scores).any()
    actions, mask, groups, scores = _episodes([(0, [9, 1], 1.0), (0, [9, 1], 0.0), (0, [9, 2], 1.0)])
    assert group_forks(actions, mask, groups, scores)[:, 1].tolist() == [True, True, True]


def test_group_fork_weighting_needs_groups(micro_reference_dir, tmp_path):
    from agents.rl.sampling import sample_batch
    from agents.rl.update import token_kl_weights

    config = RLConfig(episodes_per_update=4, eval_episodes=2, value_hidden=(8,), temperature=1.0)
    trainer = Trainer(config, micro_reference_dir, tmp_path)
    rollout, _ = sample_batch(trainer.policy, trainer.reference, trainer.env, trainer.generator, seed=0)
    with pytest.raises(ValueError, match="need groups of episodes: set group_size >= 2"):
        token_kl_weights(rollout, config.with_overrides(kl_weighting="group_fork"))
    rollout = dataclasses.replace(rollout, groups=torch.tensor([0, 0, 1, 1]))
    weights = token_kl_weights(rollout, config.with_overrides(kl_weighting="group_fork_critical", beta=2.0))
    assert weights.shape == rollout.logp.shape and ((weights >= 0) & (weights <= 1)).all()


def test_value_jumps_by_hand_and_the_weighting_lifts_the_largest():
    from types import SimpleNamespace

    from agents.rl.weightings import value_jump, value_jumps

    # One episode of 4 tokens, V = 0.3, 0.3, 0.9, 0.9, reward 1 at the end: jumps 0, 0.6, 0, 0.1.
    rollout = SimpleNamespace(
        values=torch.tensor([[0.3, 0.3, 0.9, 0.9, 0.0]]),
        rewards=torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]]),
        mask=torch.tensor([[True, True, True, True, False]]),
    )
    torch.testing.assert_close(value_jumps(rollout), torch.tensor([[0.0, 0.6, 0.0, 0.1, 0.0]]))
    # 5% of 4 tokens rounds to one token at least: the 0.6 jump.
    assert value_jump(rollout, RLConfig()).tolist() == [[1.0, 0.0, 1.0, 1.0, 1.0]]


def test_value_jump_needs_a_critic():
    from agents.rl.algorithms import check_config

    check_config(RLConfig(kl_weighting="value_jump"))  # ppo: gae trains a critic
    with pytest.raises(
        ValueError, match=r"needs what the agents backend with algo 'grpo' cannot give \(values"
    ):
        check_config(RLConfig(algo="grpo", episodes_per_update=64, kl_weighting="value_jump"))

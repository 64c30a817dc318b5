"""Exploration methods (agents/rl/methods.py and their hooks in agents/rl/update.py)."""

from __future__ import annotations

import pytest
import torch

from agents.rl.config import RLConfig
from agents.rl.methods import METHODS, apply_method, beta_sweep, method_settings
from agents.rl.trainer import Trainer
from agents.rl.update import kl_cov_tokens, policy_gradient_tokens, token_kl_weights
from agents.rl.update import policy_update as ppo_update
from agents.rl.weighting import KL_WEIGHTINGS
from agents.rl.weightings import top_fraction

SMALL = RLConfig(
    lr=1e-3,
    episodes_per_update=4,
    total_episodes=4,
    minibatches=2,
    update_epochs=2,
    eval_episodes=2,
    value_hidden=(8,),
    kl_coef=1.0,
    certainty_temperature=1.0,
)


@pytest.fixture(scope="module")
def trainer_and_rollout(micro_reference_dir, tmp_path_factory):
    from agents.rl.rollout import collect_rollout

    trainer = Trainer(SMALL, micro_reference_dir, tmp_path_factory.mktemp("run"))
    rollout = collect_rollout(
        trainer.policy, trainer.reference, trainer.env, trainer.generator, seed=0, certainty_temperature=1.0
    )
    return trainer, rollout


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_runs_one_update(name, micro_reference_dir, tmp_path):
    config = apply_method(SMALL, name)
    if "groups" in KL_WEIGHTINGS[config.kl_weighting].needs:
        config = config.with_overrides(algo="grpo", group_size=2)  # 4 episodes: 2 problems x 2
    trainer = Trainer(config, micro_reference_dir, tmp_path / name)
    before = [p.detach().clone() for p in trainer.policy.lm.parameters()]
    stats = trainer.train_one_update()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert stats["first_ratio_max_error"] < 1e-4
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.lm.parameters(), strict=True))


def test_oracle_critical_weights_are_zero_exactly_at_critical_tokens(trainer_and_rollout):
    _, rollout = trainer_and_rollout
    rollout.critical[0, 1] = True  # the micro env (N=1) may play no critical token: add one
    weights = token_kl_weights(rollout, SMALL.with_overrides(kl_weighting="oracle_critical"))
    live = rollout.mask
    assert torch.all(weights[rollout.critical & live] == 0)
    assert torch.all(weights[~rollout.critical & live] == 1)
    assert torch.all(weights[~live] == 0)


def test_top_fraction_keeps_the_highest_live_scores():
    scores = torch.tensor([[5.0, 1.0, 3.0, 9.0], [2.0, 4.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    picked = top_fraction(scores, mask, 0.4)  # 5 live tokens -> 2: the 5 and the 4 (9 is padding)
    assert picked.tolist() == [[True, False, False, False], [False, True, False, False]]
    assert top_fraction(scores, mask, 1e-9).sum() == 1  # at least one token


def test_entropy_topk_covers_a_fifth_of_the_tokens(trainer_and_rollout):
    _, rollout = trainer_and_rollout
    config = apply_method(SMALL, "entropy_topk")
    chosen = policy_gradient_tokens(rollout, config).bool()
    live = rollout.entropy[rollout.mask]
    assert chosen.sum() >= round(0.2 * live.numel())
    assert rollout.entropy[chosen].min() >= rollout.entropy[rollout.mask & ~chosen].max()
    assert torch.equal(policy_gradient_tokens(rollout, SMALL), rollout.mask.float())


def test_kl_cov_picks_the_largest_covariance_terms():
    logp = torch.tensor([[-0.1, -2.0, -1.0, -0.5]])
    adv = torch.tensor([[1.0, -1.0, 0.0, 3.0]])
    mask = torch.ones_like(adv, dtype=torch.bool)
    # centred: logp - (-0.9) = [0.8, -1.1, -0.1, 0.4]; adv - 0.75 = [0.25, -1.75, -0.75, 2.25]
    # products: [0.2, 1.925, 0.075, 0.9] -> the top half is tokens 1 and 3
    assert kl_cov_tokens(logp, adv, mask, 0.5).tolist() == [[False, True, False, True]]


def test_kl_cov_penalty_changes_the_update_only_after_the_policy_moved(trainer_and_rollout):
    trainer, rollout = trainer_and_rollout
    config = SMALL.with_overrides(kl_cov_fraction=0.5, kl_cov_coef=10.0, minibatches=1, update_epochs=1)
    stats = ppo_update(
        trainer.policy, torch.optim.SGD(trainer.policy.parameters(), lr=0.0), rollout, config, trainer.kl
    )
    plain = ppo_update(
        trainer.policy,
        torch.optim.SGD(trainer.policy.parameters(), lr=0.0),
        rollout,
        config.with_overrides(kl_cov_fraction=0.0),
        trainer.kl,
    )
    # |log ratio| is 0 before any step: the first minibatch's loss is the plain one.
    assert stats["loss"] == pytest.approx(plain["loss"], abs=1e-6)


def test_method_names_and_beta_suffix():
    assert method_settings("critical@beta=1000")["beta"] == 1000.0
    assert method_settings("clip_higher")["clip_coef_high"] == 0.28
    assert apply_method(SMALL, "critical_max_prob").certainty_kind == "max_prob"
    with pytest.raises(ValueError, match="unknown method"):
        method_settings("critikal")
    with pytest.raises(ValueError, match="only critical methods"):
        method_settings("uniform@beta=10")
    with pytest.raises(ValueError, match="beta must be a number"):
        method_settings("critical@beta=big")
    assert beta_sweep(["uniform", "critical"], [10, 1e4]) == [
        "uniform",
        "critical@beta=10",
        "critical@beta=10000",
    ]


def test_invalid_method_settings_are_refused():
    with pytest.raises(ValueError, match="pg_tokens"):
        RLConfig(pg_tokens="some")
    with pytest.raises(ValueError, match="entropy_top_fraction"):
        RLConfig(entropy_top_fraction=0.0)
    with pytest.raises(ValueError, match="kl_cov_fraction"):
        RLConfig(kl_cov_fraction=1.5)

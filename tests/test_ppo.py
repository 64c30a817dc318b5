"""The policy update (agents/rl/update.py) with PPO / A2C, GAE, and RL settings (agents/rl/config.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from agents.kl import kl_estimate
from agents.lm.episodes import make_vector_env
from agents.lm.model import build_model
from agents.rl.advantages import AdvantageInputs
from agents.rl.advantages import gae as gae_estimator
from agents.rl.algorithms import check_config
from agents.rl.config import PRESETS, RLConfig
from agents.rl.policy import LMPolicy
from agents.rl.rollout import collect_rollout, episode_inputs
from agents.rl.update import KLController, policy_forward, shaped_rewards, token_kl_weights
from agents.rl.update import policy_update as ppo_update


def gae(rewards, values, mask, gamma, lam):
    """The registered ``gae`` estimator without whitening: (advantages, returns)."""
    groups = torch.arange(rewards.shape[0])
    out = gae_estimator(AdvantageInputs(rewards, mask, values, groups, gamma, lam, normalize=False))
    return out.advantages, out.returns


# ----------------------------------------------------------------------------- GAE


def test_gae_with_gamma_and_lambda_one_is_reward_to_go():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.3, 0.6, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # Returns are the sum of future rewards within the episode; nothing past its end.
    torch.testing.assert_close(returns, torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 0.8, 0.6], [0.7, 0.4, 0.0]]))


def test_gae_with_lambda_below_one_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.4]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # deltas: d2 = 1 - 0.4 = 0.6, d1 = 0.4 - 0.2 = 0.2, d0 = 0.2 - 0.5 = -0.3
    # A2 = 0.6, A1 = 0.2 + 0.5 * 0.6 = 0.5, A0 = -0.3 + 0.5 * 0.5 = -0.05
    torch.testing.assert_close(advantages, torch.tensor([[-0.05, 0.5, 0.6]]))
    torch.testing.assert_close(returns, torch.tensor([[0.45, 0.7, 1.0]]))


def test_gae_with_discount_by_hand():
    rewards = torch.tensor([[0.0, 2.0]])
    values = torch.tensor([[1.0, 1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    advantages, _ = gae(rewards, values, mask, gamma=0.5, lam=1.0)
    # A1 = 2 - 1 = 1; A0 = 0 + 0.5 * 1 - 1 + 0.5 * 1 * 1 = 0 (= discounted return 1 - V 1).
    torch.testing.assert_close(advantages, torch.tensor([[0.0, 1.0]]))


# ----------------------------------------------------------------------------- fixtures

SMALL = dict(
    episodes_per_update=6,
    minibatches=1,
    update_epochs=1,
    temperature=1.0,
    lr=1e-3,
    eval_every=1,
    eval_episodes=4,
)


def _config(**overrides) -> RLConfig:
    return RLConfig(**{**SMALL, **overrides})


def _setup(seed=0, batch=6, steps=20, reference_seed=1):
    """A fresh micro policy, a different micro reference and a rollout of ``batch`` episodes."""
    torch.manual_seed(seed)
    policy = LMPolicy(build_model("micro", seed=seed), temperature=1.0)
    reference = build_model("micro", seed=reference_seed).eval()
    env = make_vector_env(batch, 1, "plus1", max_episode_steps=steps)
    rollout = collect_rollout(policy, reference, env, torch.Generator().manual_seed(seed), seed=seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    return policy, optimizer, rollout


def _update(config, seed=0):
    policy, optimizer, rollout = _setup(seed)
    kl = KLController(config.kl_coef, config.adaptive_kl_target, config.adaptive_kl_horizon)
    return ppo_update(policy, optimizer, rollout, config, kl, torch.Generator().manual_seed(0)), rollout


def _masked_mean(x, mask):
    return float((x * mask).sum() / mask.sum())


# ----------------------------------------------------------------------------- the update


def test_update_recomputes_the_rollout_log_probs():
    policy, _, rollout = _setup()
    log_probs, values = policy_forward(policy, rollout, torch.arange(rollout.actions.shape[0]))
    new_logp = log_probs.gather(-1, rollout.actions[..., None]).squeeze(-1)
    mask = rollout.mask
    assert (new_logp - rollout.logp)[mask].abs().max() < 1e-4
    assert (values - rollout.values)[mask].abs().max() < 1e-4
    stats, _ = _update(_config(minibatches=2, update_epochs=2))
    assert stats["first_ratio_max_error"] < 1e-4


def test_chunked_forward_equals_one_forward_over_all_rows_values_and_gradients():
    policy, _, rollout = _setup(batch=7, steps=40)
    mask, rows = rollout.mask, torch.tensor([6, 0, 3, 2, 5, 1, 4])
    assert len(set(mask.sum(dim=1).tolist())) > 2  # episodes of several lengths
    # One forward over every row at the batch's width, as the update did before chunks:
    input_ids, attention, positions, width = episode_inputs(rollout, rows)
    out = policy(input_ids, attention, positions)
    whole = policy.log_probs(out.logits[:, width - 1 :]), out.values[:, width - 1 :]
    results = []
    for rows_per_forward in (1, 3, 7):
        policy.zero_grad()
        log_probs, values = policy_forward(policy, rollout, rows, rows_per_forward)
        m = mask[rows]
        torch.testing.assert_close(log_probs[m], whole[0][m], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values[m], whole[1][m], atol=1e-5, rtol=1e-5)
        assert torch.isfinite(log_probs).all() and torch.isfinite(values).all()
        if rows_per_forward == 1:  # past an episode's end: uniform log-probs, zero values
            vocab = log_probs.shape[-1]
            assert torch.allclose(log_probs[~m], torch.tensor(-math.log(vocab))) and not values[~m].any()
        new_logp = log_probs.gather(-1, rollout.actions[rows, :, None]).squeeze(-1)
        ((new_logp + values) * m).sum().backward()
        results.append([p.grad.clone() for p in policy.parameters()])
    for grads in results[1:]:
        for a, b in zip(results[0], grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_policy_gradient_step_moves_sampled_tokens_the_right_way(sign):
    policy, optimizer, rollout = _setup()
    mask = rollout.mask
    lengths = mask.sum(dim=1)
    # Reward ``sign`` at each episode's last token and zero values: every advantage is ``sign``.
    rewards = torch.zeros_like(rollout.rewards)
    rewards[torch.arange(len(lengths)), lengths - 1] = sign
    rollout = dataclasses.replace(rollout, rewards=rewards, values=torch.zeros_like(rollout.values))
    config = _config(
        algo="ppo", kl_weighting="none", normalize_advantages=False, value_coef=0.0, entropy_coef=0.0
    )
    old = _masked_mean(rollout.logp, mask)
    ppo_update(policy, optimizer, rollout, config, KLController(0.0))
    with torch.no_grad():
        log_probs, _ = policy_forward(policy, rollout, torch.arange(len(lengths)))
    new = _masked_mean(log_probs.gather(-1, rollout.actions[..., None]).squeeze(-1), mask)
    assert (new - old) * sign > 1e-3, (old, new)


def test_a2c_runs_and_changes_the_weights():
    policy, optimizer, rollout = _setup()
    before = [p.detach().clone() for p in policy.parameters()]
    stats = ppo_update(policy, optimizer, rollout, _config(algo="a2c"), KLController(1.0))
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["first_ratio_max_error"] < 1e-4
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.parameters(), strict=True))


@pytest.mark.parametrize("kl_in", ["loss", "reward"])
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "full"])
def test_kl_in_loss_and_in_reward_give_finite_stats(kl_in, estimator):
    config = _config(kl_in=kl_in, kl_estimator=estimator, kl_weighting="uniform")
    stats, _ = _update(config)
    expected = {"loss", "pg_loss", "value_loss", "entropy", "kl", "weighted_kl", "approx_kl"}
    assert expected <= stats.keys()
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert stats["kl"] != 0.0  # policy and reference differ


def test_kl_in_reward_shapes_every_token():
    _, _, rollout = _setup()
    config = _config(kl_in="reward", kl_estimator="k2", kl_weighting="uniform")
    weights = token_kl_weights(rollout, config)
    shaped = shaped_rewards(rollout, weights, config, kl_coef=2.0)
    kl = kl_estimate("k2", rollout.logp, rollout.ref_logp)
    torch.testing.assert_close(shaped, rollout.rewards - 2.0 * kl * rollout.mask)
    # In the loss (or with no KL), the rewards are the env's.
    for other in (
        dataclasses.replace(config, kl_in="loss"),
        dataclasses.replace(config, kl_weighting="none"),
    ):
        assert torch.equal(shaped_rewards(rollout, weights, other, 2.0), rollout.rewards)


def test_kl_weightings():
    none, _ = _update(_config(kl_weighting="none"))
    assert none["weighted_kl"] == 0.0 and none["mean_kl_weight"] == 0.0
    assert none["kl"] > 0.0  # still measured
    uniform, _ = _update(_config(kl_weighting="uniform"))
    assert uniform["mean_kl_weight"] == pytest.approx(1.0)
    assert uniform["weighted_kl"] == pytest.approx(uniform["kl"])
    critical, _ = _update(_config(kl_weighting="critical", beta=2.0))
    assert 0.0 < critical["mean_kl_weight"] < 1.0
    assert critical["weighted_kl"] < critical["kl"]


def test_token_kl_weights_are_masked():
    _, _, rollout = _setup()
    weights = token_kl_weights(rollout, _config(kl_weighting="uniform"))
    assert torch.equal(weights, rollout.mask.float())


def test_adaptive_kl_controller():
    up = KLController(coef=1.0, target=0.1, horizon=100)
    up.update(observed_kl=0.5, episodes=10)
    assert up.coef == pytest.approx(1.0 + 0.2 * 10 / 100)  # error clipped to +0.2
    down = KLController(coef=1.0, target=0.1, horizon=100)
    down.update(observed_kl=0.05, episodes=10)
    assert down.coef == pytest.approx(1.0 - 0.5 * 10 / 100 * 0.4)  # error -0.5 clipped to -0.2
    fixed = KLController(coef=1.0)
    fixed.update(observed_kl=10.0, episodes=10)
    assert fixed.coef == 1.0


def test_adaptive_kl_in_the_update():
    stats, _ = _update(_config(kl_weighting="uniform", adaptive_kl_target=1e-9, kl_coef=1.0))
    assert stats["kl_coef"] == 1.0  # the coefficient used by this update
    policy, optimizer, rollout = _setup()
    kl = KLController(1.0, target=1e-9, horizon=60)
    ppo_update(policy, optimizer, rollout, _config(adaptive_kl_target=1e-9), kl)
    assert kl.coef == pytest.approx(1.0 + 0.2 * 6 / 60)


# ----------------------------------------------------------------------------- RLConfig


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": -1e-5},
        {"lr": 0.0},
        {"minibatches": 8, "episodes_per_update": 4},
        {"kl_estimator": "k4"},
        {"kl_in": "value"},
        {"gamma": 1.5},
        {"gae_lambda": -0.1},
        {"entropy_coef": -1.0},
        {"temperature": 0.0},
        {"update_epochs": 0},
        {"split": "plus0"},
        {"adaptive_kl_target": -1.0},
    ],
)
def test_rl_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        RLConfig(**bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"algo": "sac"}, r"unknown algorithm 'sac'; registered: ppo, a2c, grpo"),
        ({"kl_weighting": "some"}, r"unknown KL weighting 'some'; registered: none, uniform, critical"),
        ({"advantage": "td"}, r"unknown advantage estimator 'td'; registered: gae, grpo"),
        ({"policy_loss": "trpo"}, r"unknown policy loss 'trpo'; registered: ppo_clip, vanilla"),
        ({"loss_agg": "sum"}, r"unknown loss aggregation 'sum'; registered: token_mean"),
        ({"algo": "grpo", "group_size": 1}, r"advantage 'grpo' needs group_size >= 2, got 1"),
        (
            {"algo": "grpo", "episodes_per_update": 12},
            r"episodes_per_update \(12\) must be a multiple of group_size \(8\)",
        ),
        ({"dynamic_sampling": True}, r"with dynamic_sampling needs group_size >= 2"),
        (
            {"kl_weighting": "group_fork"},
            r"KL weighting 'group_fork' needs what the agents backend with algo 'ppo' cannot give \(groups",
        ),
    ],
)
def test_start_up_check_names_the_bad_registered_name(bad, message):
    config = RLConfig(**bad)  # registered names are checked when a run starts (plug-ins first)
    with pytest.raises(ValueError, match=message):
        check_config(config)


def test_overrides_reject_unknown_names():
    with pytest.raises(ValueError, match=r"unknown RL settings: \['learning_rate'\]"):
        RLConfig().with_overrides(learning_rate=1e-3)
    config = RLConfig().with_overrides(lr=1e-3, value_hidden=[16])
    assert config.lr == 1e-3 and config.value_hidden == (16,)


def test_paper_preset_is_table_3():
    paper = PRESETS["paper"]
    assert paper.algo == "a2c"
    assert paper.lr == 1e-6
    assert paper.gamma == 1.0
    assert paper.value_coef == 0.1
    assert paper.entropy_coef == 5e-4
    assert paper.kl_coef == 5.0
    assert paper.beta == 150.0
    assert paper.kl_estimator == "k2"
    assert paper.episodes_per_update == 50
    assert paper.update_epochs == 1
    assert paper.temperature == 2.0
    assert paper.certainty_temperature == 4.0
    assert paper.kl_weighting == "critical" and paper.value_hidden == (128, 128)


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"preset": "paper", "lr": 2e-6}))
    config = RLConfig.from_file(path)
    assert config == PRESETS["paper"].with_overrides(lr=2e-6)
    path.write_text(PRESETS["cpu"].to_json())
    assert RLConfig.from_file(path) == PRESETS["cpu"]
    assert PRESETS["cpu"].num_updates == 8  # 512 episodes, 64 per update

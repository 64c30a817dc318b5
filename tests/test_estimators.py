"""Advantage estimators, policy losses and aggregations (agents/rl/advantages.py, losses.py)
against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.rl.advantages import ADVANTAGES, AdvantageInputs
from agents.rl.losses import LOSS_AGGREGATIONS, POLICY_LOSSES, PolicyLossInputs

# Two groups of G = 3: group 0 scores 1, 0, 0; group 1 scores 1, 1, 1 (all equal).
LENGTHS = [2, 1, 3, 2, 2, 1]
SCORES = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
GROUPS = torch.tensor([0, 0, 0, 1, 1, 1])


def _batch(scores=SCORES, lengths=LENGTHS, groups=GROUPS) -> AdvantageInputs:
    """Outcome rewards at each episode's last token, as the env pays them."""
    steps = max(lengths)
    mask = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
    rewards = torch.zeros(len(lengths), steps)
    for i, (score, length) in enumerate(zip(scores, lengths, strict=True)):
        rewards[i, length - 1] = score
    return AdvantageInputs(rewards, mask, torch.zeros(len(lengths), steps), groups)


def _per_episode(name: str, inputs: AdvantageInputs | None = None) -> torch.Tensor:
    """The estimator's advantage of each episode (checking that all its tokens share it)."""
    inputs = inputs or _batch()
    advantages = ADVANTAGES[name].fn(inputs).advantages
    assert torch.all(advantages[~inputs.mask] == 0)
    firsts = advantages[:, 0]
    torch.testing.assert_close(advantages, firsts[:, None] * inputs.mask)
    return firsts


def test_grpo_by_hand():
    # Group 0: mean 1/3, unbiased std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3).
    std = math.sqrt(1 / 3)
    expected = [(2 / 3) / std, (-1 / 3) / std, (-1 / 3) / std, 0.0, 0.0, 0.0]
    torch.testing.assert_close(_per_episode("grpo"), torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_dr_grpo_by_hand():
    torch.testing.assert_close(_per_episode("dr_grpo"), torch.tensor([2 / 3, -1 / 3, -1 / 3, 0.0, 0.0, 0.0]))


def test_rloo_by_hand():
    # r_i minus the mean of the other two: 1 - 0, 0 - 1/2, 0 - 1/2; group 1: 1 - 1.
    torch.testing.assert_close(_per_episode("rloo"), torch.tensor([1.0, -0.5, -0.5, 0.0, 0.0, 0.0]))


def test_reinforce_pp_whitens_the_reward_to_go_over_the_batch():
    # Reward-to-go is each episode's score on each of its tokens: 7 tokens of 1 and 4 of 0.
    # Over the 11 played tokens: mean 7/11, population std sqrt(28) / 11.
    advantages = ADVANTAGES["reinforce_pp"].fn(_batch()).advantages
    high, low = 4 / math.sqrt(28), -7 / math.sqrt(28)
    expected = [high, low, low, high, high, high]
    inputs = _batch()
    torch.testing.assert_close(
        advantages, torch.tensor(expected)[:, None] * inputs.mask, atol=1e-5, rtol=1e-5
    )


def test_reinforce_pp_baseline_subtracts_the_group_mean_first():
    # G_t - group mean: 2/3 (2 tokens), -1/3 (1 + 3 tokens), 0 (5 tokens): mean 0,
    # population variance (2 (4/9) + 4 (1/9)) / 11 = 4/33.
    std = math.sqrt(4 / 33)
    expected = [(2 / 3) / std, (-1 / 3) / std, (-1 / 3) / std, 0.0, 0.0, 0.0]
    torch.testing.assert_close(
        _per_episode("reinforce_pp_baseline"), torch.tensor(expected), atol=1e-5, rtol=1e-5
    )


def test_a_kl_shaped_reward_counts_in_the_episode_score():
    # KL in the reward: the score is the sum of the per-token rewards (1 - 0.25 and 0 - 0.5).
    inputs = _batch(scores=[1.0, 0.0], lengths=[2, 2], groups=torch.tensor([0, 0]))
    inputs.rewards[:, 0] -= torch.tensor([0.25, 0.5])
    torch.testing.assert_close(_per_episode("dr_grpo", inputs), torch.tensor([0.625, -0.625]))


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_all_equal_rewards_give_zero_advantages(name):
    inputs = _batch(scores=[0.0, 0.0, 1.0, 1.0], lengths=[1, 2, 3, 1], groups=torch.tensor([0, 0, 1, 1]))
    assert torch.equal(ADVANTAGES[name].fn(inputs).advantages, torch.zeros_like(inputs.rewards))


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
def test_a_group_of_one_is_a_clear_error(name):
    inputs = _batch(scores=[1.0, 0.0, 0.0], lengths=[1, 1, 1], groups=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"at least 2 episodes per problem \(group_size >= 2\)"):
        ADVANTAGES[name].fn(inputs)


@settings(max_examples=50, deadline=None)
@given(
    group_size=st.integers(2, 6),
    groups=st.integers(1, 4),
    data=st.data(),
)
def test_rloo_is_the_group_mean_baseline_times_g_over_g_minus_1(group_size, groups, data):
    count = group_size * groups
    scores = data.draw(st.lists(st.floats(-2, 2, width=32), min_size=count, max_size=count))
    lengths = data.draw(st.lists(st.integers(1, 4), min_size=count, max_size=count))
    inputs = _batch(scores, lengths, torch.arange(count) // group_size)
    rloo = ADVANTAGES["rloo"].fn(inputs).advantages
    baseline = ADVANTAGES["dr_grpo"].fn(inputs).advantages
    torch.testing.assert_close(rloo, baseline * group_size / (group_size - 1), atol=1e-5, rtol=1e-5)


def test_estimators_declare_what_they_need():
    assert ADVANTAGES["gae"].uses_critic and not ADVANTAGES["gae"].needs_groups
    for name in ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"):
        assert ADVANTAGES[name].needs_groups and not ADVANTAGES[name].uses_critic
    assert not ADVANTAGES["reinforce_pp"].needs_groups


# ----------------------------------------------------------------------------- policy losses


def _loss_inputs(new_logp, old_logp, advantages, mask=None, low=0.2, high=0.2) -> PolicyLossInputs:
    mask = torch.ones_like(new_logp, dtype=torch.bool) if mask is None else mask
    return PolicyLossInputs(new_logp, old_logp, advantages, mask, low, high)


def test_ppo_clip_by_hand():
    # ratio 1.5 with A = 1: clipped at 1.2 (loss -1.2, no gradient); ratio 0.5 with A = 1: -0.5.
    new = torch.log(torch.tensor([[1.5, 0.5]])).requires_grad_()
    out = POLICY_LOSSES["ppo_clip"](_loss_inputs(new, torch.zeros(1, 2), torch.ones(1, 2)))
    torch.testing.assert_close(out.loss, torch.tensor([[-1.2, -0.5]]))
    assert out.clipped.tolist() == [[True, False]]
    out.loss.sum().backward()
    torch.testing.assert_close(new.grad, torch.tensor([[0.0, -0.5]]))


@settings(max_examples=50, deadline=None)
@given(
    logs=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-2, 2)), min_size=1, max_size=8),
    high=st.floats(0.05, 0.5),
)
def test_gspo_with_one_token_episodes_is_ppo_clip(logs, high):
    new = torch.tensor([[n] for n, _, _ in logs], dtype=torch.float64)
    old = torch.tensor([[o] for _, o, _ in logs], dtype=torch.float64)
    adv = torch.tensor([[a] for _, _, a in logs], dtype=torch.float64)
    results = []
    for name in ("gspo", "ppo_clip"):
        leaf = new.clone().requires_grad_()
        out = POLICY_LOSSES[name](_loss_inputs(leaf, old, adv, low=0.2, high=high))
        out.loss.sum().backward()
        results.append((out.loss.detach(), out.clipped, leaf.grad))
    (gspo_loss, gspo_clipped, gspo_grad), (ppo_loss, ppo_clipped, ppo_grad) = results
    torch.testing.assert_close(gspo_loss, ppo_loss)
    torch.testing.assert_close(gspo_grad, ppo_grad)
    assert torch.equal(gspo_clipped, ppo_clipped)


def test_gspo_uses_one_length_normalised_ratio_per_episode():
    # Episode 0: log-ratios 0.2 and 0.0 -> s = exp(0.1) on both tokens; episode 1 (1 token): exp(-0.1).
    new = torch.tensor([[0.2, 0.0], [-0.1, 5.0]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    out = POLICY_LOSSES["gspo"](_loss_inputs(new, torch.zeros(2, 2), torch.ones(2, 2), mask, 1.0, 1.0))
    s0, s1 = math.exp(0.1), math.exp(-0.1)
    torch.testing.assert_close(out.loss[mask], -torch.tensor([s0, s0, s1]))
    # Per-episode token mean: the gradient of -s_0 is -s_0 / 2 on each of its tokens.
    LOSS_AGGREGATIONS["seq_mean_token_mean"](out.loss, mask, 1.0).backward()
    torch.testing.assert_close(new.grad[0], torch.full((2,), -s0 / 2 / 2))


def test_cispo_clips_and_detaches_the_weight_but_keeps_every_gradient():
    # ratio 3 with A = 1: weight clipped to 1.28, still a gradient of -1.28 on log pi.
    new = torch.log(torch.tensor([[3.0, 0.5]])).requires_grad_()
    out = POLICY_LOSSES["cispo"](_loss_inputs(new, torch.zeros(1, 2), torch.ones(1, 2), low=1.0, high=0.28))
    torch.testing.assert_close(out.loss, -torch.tensor([[1.28, 0.5]]) * new.detach())
    out.loss.sum().backward()
    torch.testing.assert_close(new.grad, torch.tensor([[-1.28, -0.5]]))
    assert out.clipped.tolist() == [[True, False]]


def test_vanilla_is_the_plain_policy_gradient():
    new = torch.tensor([[-0.5, -2.0]], requires_grad=True)
    out = POLICY_LOSSES["vanilla"](_loss_inputs(new, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]])))
    torch.testing.assert_close(out.loss, torch.tensor([[1.0, -2.0]]))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("token_mean", (1 + 2 + 3 + 4) / 4),  # every token alike
        ("seq_mean_token_mean", (2 + 4) / 2),  # each episode's mean, then their mean
        ("seq_mean_token_sum_norm", (6 / 4 + 4 / 4) / 2),  # each episode's sum over the constant 4
    ],
)
def test_aggregations_by_hand(name, expected):
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert LOSS_AGGREGATIONS[name](loss, mask, 4.0).item() == pytest.approx(expected)

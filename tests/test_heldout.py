"""The held-out evaluation protocol: the problem partition (arith_gym.operands), the evaluation set
(agents/evaluation/heldout.py), Wilson intervals and disjointness from training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.evaluation.accuracy import wilson_interval
from agents.evaluation.heldout import EvalSet, check_disjoint, heldout_eval_set
from agents.lm.episodes import make_vector_env
from agents.rl.sampling import grouped_operands
from arith_gym import ENV_ID
from arith_gym.operands import is_heldout, sample_operands, split_problems


def test_one_problem_in_sixteen_is_held_out():
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 100_000, size=(40_000, 2))
    share = np.mean([is_heldout(int(a), int(b)) for a, b in pairs])
    assert 0.055 < share < 0.07  # 1/16 = 0.0625; binomial SD at 40,000 draws: 0.0012
    # Pinned: the partition must not move between versions (saved evaluation sets rely on it).
    assert sum(is_heldout(a, b) for a in range(100) for b in range(100)) == 578
    assert [a for a in range(200) if is_heldout(a, 7)] == [1, 39, 78, 99, 148, 182, 183]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), split=st.sampled_from(["comfort", "plus1", "plus2"]), n=st.integers(1, 4)
)
def test_draws_respect_the_problem_set(seed, split, n):
    rng = np.random.default_rng(seed)
    assert not any(is_heldout(*sample_operands(rng, split, n, "train")) for _ in range(20))
    assert all(is_heldout(*sample_operands(rng, split, n, "heldout")) for _ in range(20))


def test_all_draws_what_it_always_drew():
    # problem_set="all" (the default) must not change a seeded stream.
    assert split_problems("plus1", 3, 50, 7) == split_problems("plus1", 3, 50, 7, problem_set="all")


def test_a_bad_problem_set_is_named():
    with pytest.raises(
        ValueError, match=r"problem_set must be one of \('all', 'train', 'heldout'\), got 'test'"
    ):
        sample_operands(np.random.default_rng(0), "plus1", 3, "test")
    with pytest.raises(ValueError, match="problem_set must be one of"):
        gym.make(ENV_ID, problem_set="test")


def _heldout_pair() -> tuple[int, int]:
    return next((a, b) for a in range(100, 1000) for b in range(10, 100) if is_heldout(a, b))


def test_a_training_env_refuses_a_forced_heldout_problem():
    a, b = _heldout_pair()
    env = gym.make(ENV_ID, comfort_digits=3, split="comfort", problem_set="train")
    with pytest.raises(
        ValueError, match=rf"operands \({a}, {b}\) is a held-out problem.*problem_set='train'"
    ):
        env.reset(options={"operands": (a, b)})
    vector = make_vector_env(2, 3, "comfort", problem_set="train")
    with pytest.raises(ValueError, match=r"options\['operands'\]\[1\] .* is a held-out problem"):
        vector.reset(options={"operands": [None, (a, b)]})


def test_training_envs_and_group_draws_never_play_a_heldout_problem():
    env = make_vector_env(64, 2, "plus1", problem_set="train")  # N = 2: a small problem space
    seen = []
    for seed in range(20):
        _, info = env.reset(seed=seed * 64)
        seen += list(zip(info["a"].tolist(), info["b"].tolist(), strict=True))
    seen += grouped_operands(3, "plus1", 2, problems=200, group_size=2)
    eval_set = heldout_eval_set(2, "plus1", 400, 200)
    check_disjoint(eval_set, seen)  # raises on any overlap
    with pytest.raises(ValueError, match="training played held-out problems"):
        check_disjoint(eval_set, [*seen[:3], eval_set.problems["plus1"][0]])


def test_the_evaluation_set_is_fixed_held_out_and_round_trips(tmp_path):
    first = heldout_eval_set(3, "plus1", 40, 20, seed=5)
    assert first == heldout_eval_set(3, "plus1", 40, 20, seed=5)
    assert len(first.head("plus1")) == 40 and len(first.head("comfort")) == 20
    assert first.head("plus1", 10) == first.head("plus1")[:10]  # intermediate evaluations: a prefix
    assert all(is_heldout(a, b) for pairs in first.problems.values() for a, b in pairs)
    assert first != heldout_eval_set(3, "plus1", 40, 20, seed=6)
    assert EvalSet.load(first.save(tmp_path / "set.json")) == first
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json: not an evaluation set"):
        EvalSet.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no 'plus2' problems"):
        first.head("plus2")


@pytest.mark.parametrize(
    "successes, total, low, high",
    [
        (40, 100, 0.3094, 0.4980),  # p = 0.4: centre 0.4037, half-width 0.0943
        (0, 10, 0.0, 0.2775),  # sound at 0%: (z^2 / 2n) / (1 + z^2 / n) on either side of the centre
        (10, 10, 0.7225, 1.0),
        (200, 400, 0.4512, 0.5488),
    ],
)
def test_wilson_interval_by_hand(successes, total, low, high):
    got = wilson_interval(successes, total)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_critical_probabilities_stay_on_the_intermediate_prefix(micro_model):
    """The final evaluation takes p(right) at the critical labels on the same problems as the
    intermediate ones, so every point of ``critical.csv`` is on one problem set."""
    from agents.evaluation.accuracy import rl_evaluation
    from agents.evaluation.teacher_forcing import critical_probabilities

    eval_set = heldout_eval_set(2, "plus1", 6, 4)
    metrics = rl_evaluation(
        micro_model, 2, "plus1", 1.0, None, seed=0, greedy=False, eval_set=eval_set, critical_episodes=3
    )
    expected = critical_probabilities(micro_model, eval_set.head("plus1", 3), 2, 1.0)
    assert metrics["plus1_problems"] == 6
    prefix = "p_critical/"
    got = {key.removeprefix(prefix): value for key, value in metrics.items() if key.startswith(prefix)}
    assert got == pytest.approx(expected, abs=1e-6) and got
    everything = critical_probabilities(micro_model, eval_set.head("plus1"), 2, 1.0)
    assert everything != pytest.approx(expected, abs=1e-6)


def test_the_final_evaluation_also_scores_the_intermediate_problems(micro_model):
    """Over all 6 problems, the evaluation also reports its accuracy on the first 3 (what the
    intermediate evaluations score), so a curve's last point is on the same problems as the others.
    Greedy decoding makes the two figures comparable exactly."""
    from agents.evaluation.accuracy import rl_evaluation

    eval_set = heldout_eval_set(2, "plus1", 6, 4)
    final = rl_evaluation(micro_model, 2, "plus1", 1.0, None, eval_set=eval_set, critical_episodes=3)
    head = rl_evaluation(micro_model, 2, "plus1", 1.0, 3, eval_set=eval_set, critical_episodes=3)
    assert (final["plus1_problems"], final["plus1_problems_head"], final["comfort_problems_head"]) == (
        6,
        3,
        3,
    )
    assert final["plus1_greedy_head"] == head["plus1_greedy"]
    assert final["comfort_greedy_head"] == head["comfort_greedy"]
    assert "plus1_sampled_head" in final and not any(key.endswith("_head") for key in head)

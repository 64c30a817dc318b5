"""Critical-token selectors: their scores and budgets on a hand-made table, and the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.criticality_table import ARM_COLUMNS, CriticalityTable
from agents.rl.config import PRESETS
from agents.rl.registry import load_plugin
from agents.rl.selectors import (
    SELECTORS,
    SelectorContext,
    all_selectors,
    register_selector,
    weighting_methods,
)
from agents.rl.weighting import TrainingProblems

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 41


def toy_table() -> CriticalityTable:
    """2 problems x 2 episodes of 5 tokens; the first episode of each problem succeeds."""
    rows = 20
    group = np.repeat([0, 1], 10)
    episode = np.tile(np.repeat([0, 1], 5), 2)
    position = np.tile(np.arange(5), 4)
    entropy = np.array([0.1, 0.2, 1.5, 0.1, 0.3] * 2 + [0.05, 0.9, 0.1, 0.1, 0.1] * 2)
    logp = -np.linspace(0.01, 1.0, rows)
    reward = np.where(episode == 0, 1.0, 0.0)
    ref_logits = np.zeros((rows, VOCAB), dtype=np.float16)
    nan = np.full(rows, np.nan)
    empty = {name: np.zeros(0, dtype=float if name == "arm_prob" else int) for name in ARM_COLUMNS}
    return CriticalityTable(
        seed=np.zeros(rows, int),
        group=group,
        episode=episode,
        position=position,
        token=np.full(rows, 5),
        reward=reward,
        deviated=np.zeros(rows, bool),
        structural=position == 2,
        logp=logp,
        entropy=entropy,
        top_prob=np.full(rows, 0.5),
        ref_logp=logp - 0.5 * (position == 4),
        ref_logits=ref_logits,
        attention=np.linspace(0, 1, rows),
        arms=np.ones(rows, int),
        evaluated=np.zeros(rows, bool),
        inclusion=np.ones(rows),
        value=nan,
        value_low=nan,
        value_high=nan,
        headroom=position / 10.0,
        headroom_low=nan,
        headroom_high=nan,
        jump=nan,
        jump_low=nan,
        jump_high=nan,
        **empty,
    )


@pytest.fixture
def context() -> SelectorContext:
    return SelectorContext(None, TrainingProblems(3, "plus1"), PRESETS["cpu"], seed=0)


def picks_of(name: str, table: CriticalityTable, context: SelectorContext) -> tuple[np.ndarray, np.ndarray]:
    selector = all_selectors()[name]
    scores = np.asarray(selector.score(table, context), dtype=float)
    return scores, selector.picks(table, context, scores)


def test_archer_splits_each_response_at_its_own_80th_entropy_percentile(context):
    table = toy_table()
    scores, picks = picks_of("archer", table, context)
    first = table.entropy[:5]  # [0.1, 0.2, 1.5, 0.1, 0.3]: 80th percentile (linear) = 0.54
    np.testing.assert_allclose(scores[:5], first - 0.54)
    assert picks.reshape(4, 5).sum(axis=1).tolist() == [1, 1, 1, 1]


def test_gtpo_scores_each_tokens_share_of_its_responses_entropy(context):
    table = toy_table()
    scores, picks = picks_of("gtpo", table, context)
    np.testing.assert_allclose(scores[:5], table.entropy[:5] / 2.2 * 5)
    assert np.flatnonzero(picks).tolist() == [2, 7, 11, 16]  # over twice the response's average


def test_kl_cov_is_the_covariance_of_log_prob_and_the_group_centred_reward(context):
    table = toy_table()
    scores, picks = picks_of("kl_cov", table, context)
    advantage = table.reward - 0.5  # each problem: one success, one failure
    np.testing.assert_allclose(scores, (table.logp - table.logp.mean()) * advantage)
    assert picks.sum() == 1 and scores[picks][0] == scores.max()  # 0.2 % of 20 tokens: at least one


def test_weighting_selectors_read_the_weights_the_trainers_would_use(context):
    table = toy_table()
    scores, picks = picks_of("oracle_critical", table, context)
    np.testing.assert_array_equal(scores, -(~table.structural).astype(float))  # -w
    np.testing.assert_array_equal(picks, table.structural)
    # group_fork: the four episodes fork at no shared prefix with different tokens: none picked.
    assert not picks_of("group_fork", table, context)[1].any()
    assert picks_of("none", table, context)[1].all() and not picks_of("uniform", table, context)[1].any()


def test_ties_in_a_top_share_budget_are_broken_at_random_to_the_exact_count(context):
    table = toy_table()
    selector = all_selectors()["random"]
    picks = selector.picks(table, context, np.zeros(len(table)))
    assert picks.sum() == 1  # 5 % of 20 tokens


def test_every_kl_weighting_method_is_a_selector_and_plug_ins_join_the_benchmark(context):
    load_plugin(ROOT / "examples" / "plugins" / "entropy_lift.py")
    selectors = all_selectors()
    scorable = {name for name, why in weighting_methods().items() if why is None}
    assert {"critical", "critical_auto", "oracle_critical", "group_fork", "entropy_lift"} <= scorable
    assert weighting_methods()["value_jump"] == "needs values"
    assert scorable <= set(selectors) and set(SELECTORS) <= set(selectors)
    scores, picks = picks_of("entropy_lift", toy_table(), context)
    assert picks.sum() == 4  # its top 20 % of tokens by entropy

    if "test_low_margin" not in SELECTORS:
        register_selector("test_low_margin", budget=0.1)(lambda table, context: -table.top_prob)
    assert "test_low_margin" in all_selectors()
    with pytest.raises(ValueError, match="exactly one of budget"):
        register_selector("test_no_budget")


def test_critical_auto_needs_a_reference_to_calibrate_on(context):
    with pytest.raises(ValueError, match="calibrates on the reference"):
        picks_of("critical_auto", toy_table(), context)

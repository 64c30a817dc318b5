"""IQM, probability of improvement, performance profiles and their stratified bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.evaluation.aggregate import (
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)
from agents.experiments.aggregates import aggregate_markdown, method_scores, plot_profiles


def test_iqm_by_hand():
    # 8 scores: the middle 50 % are the 3rd to 6th smallest, (3 + 4 + 5 + 6) / 4.
    assert iqm([100, 1, 2, 3, 4, 5, 6, 7]) == 4.5
    # 2 tasks x 4 runs pool their 8 scores the same way.
    assert iqm(np.array([[1, 5], [2, 6], [3, 7], [4, 100]])) == 4.5


def test_probability_of_improvement_by_hand_with_ties():
    # x=1 beats 0 once; x=2 ties 2 twice (0.5 each) and beats 0; x=3 beats all: 6 of 9 pairs.
    assert probability_of_improvement([1, 2, 3], [2, 2, 0]) == pytest.approx(6 / 9)
    assert probability_of_improvement([1, 1], [1, 1]) == 0.5
    # Two tasks: 1 on the first, 0 on the second, averaged.
    assert probability_of_improvement([[2, 0], [3, 0]], [[1, 1], [1, 1]]) == 0.5


@given(st.lists(st.floats(0, 1), min_size=1, max_size=6), st.lists(st.floats(0, 1), min_size=1, max_size=6))
@settings(max_examples=50, deadline=None)
def test_probability_of_improvement_is_antisymmetric(x, y):
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)


def test_performance_profile_counts_scores_strictly_above():
    assert performance_profile([0.1, 0.5, 0.5, 0.9], [0.0, 0.5, 0.95]).tolist() == [1.0, 0.25, 0.0]


def test_stratified_bootstrap_is_seeded_covers_the_point_and_resamples_within_tasks():
    scores = np.array([[0.2, 10.0], [0.4, 20.0], [0.6, 30.0]])
    point, low, high = stratified_bootstrap(iqm, scores, reps=300, seed=3)
    again = stratified_bootstrap(iqm, scores, reps=300, seed=3)
    assert (point, low, high) == again
    assert low <= point <= high
    # Within each task: a resample of column 0 never holds a column-1 value, so the task means stay apart.
    means, _, _ = stratified_bootstrap(lambda s: s.mean(axis=0), scores, reps=50)
    _, low_means, high_means = stratified_bootstrap(lambda s: s.mean(axis=0), scores, reps=200)
    assert high_means[0] <= 0.6 and low_means[1] >= 10.0 and means.tolist() == pytest.approx([0.4, 20.0])
    with pytest.raises(ValueError, match="reps must be >= 1"):
        stratified_bootstrap(iqm, scores, reps=0)


def test_the_summary_section_and_the_profile_plot(tmp_path):
    per_run = [
        {"algo": "ppo", "method": method, "seed": seed, "plus1": value}
        for method, values in (("uniform", [0.3, 0.4, 0.35, 0.5]), ("critical", [0.6, 0.7, 0.45, 0.8]))
        for seed, value in enumerate(values)
    ]
    scores = method_scores(per_run, "plus1")
    assert scores["critical"][:, 0].tolist() == [0.6, 0.7, 0.45, 0.8]
    text = aggregate_markdown(scores, "plus1", reps=200)
    assert "| method | runs | IQM plus1 % | P(method > uniform) |" in text
    p, low, high = stratified_bootstrap(
        probability_of_improvement, scores["critical"], scores["uniform"], reps=200
    )
    assert p == pytest.approx(15 / 16)  # 0.45 loses to 0.5; critical wins the 15 other pairs
    assert f"| critical | 4 | {100 * iqm(scores['critical']):.1f} [" in text
    assert f"| {p:.2f} [{low:.2f}, {high:.2f}] |" in text
    assert plot_profiles(scores, "plus1", tmp_path / "profile.png", reps=50).stat().st_size > 1000

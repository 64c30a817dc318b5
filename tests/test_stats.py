"""Confidence intervals across seeds (agents/evaluation/stats.py) against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from agents.evaluation.stats import mean_ci, paired_difference


def test_mean_ci_is_the_student_t_interval():
    # mean 2, sample sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.302653 / 1.732051
    estimate = mean_ci([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert estimate.mean == pytest.approx(2.0)
    assert (estimate.low, estimate.high) == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert estimate.n == 3 and not estimate.excludes_zero  # 2 +- 2.48 straddles 0


def test_one_value_has_no_interval_and_none_is_an_error():
    estimate = mean_ci([0.4])
    assert estimate.mean == 0.4 and math.isnan(estimate.low) and not estimate.excludes_zero
    with pytest.raises(ValueError, match="at least one"):
        mean_ci([])


def test_one_value_prints_no_interval_rather_than_nan():
    one = mean_ci([0.25])
    assert one.percent() == "25.0 (n=1, no interval)" and str(one) == "+0.250 (n=1, no interval)"
    assert mean_ci([0.2, 0.3]).percent(signed=True).startswith("+25.0 [")


def test_paired_difference_uses_per_seed_differences():
    # differences [0.1, 0.2, 0.3, 0.2]: mean 0.2, sd 0.08165, t(0.975, 3) = 3.182446
    estimate = paired_difference([0.6, 0.5, 0.9, 0.4], [0.5, 0.3, 0.6, 0.2])
    half = 3.182446 * 0.0816497 / 2
    assert estimate.mean == pytest.approx(0.2)
    assert (estimate.low, estimate.high) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-5)
    with pytest.raises(ValueError, match="differ in number"):
        paired_difference([0.1], [0.1, 0.2])
    assert estimate.excludes_zero and "[+" in estimate.percent(signed=True)

"""pass@k (agents/evaluation/passk.py, ``arith-rl passk``)."""

from __future__ import annotations

import csv
import itertools
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.evaluation.passk import correct_counts, ks_up_to, pass_at_k, pass_at_k_curve


@given(n=st.integers(1, 9), data=st.data())
def test_pass_at_k_equals_brute_force_enumeration(n, data):
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    brute = sum(any(subset) for subset in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_pass_at_k_by_hand_and_its_errors():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 3 of the 6 pairs hold the right one
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    with pytest.raises(ValueError, match="n=4, c=5, k=1"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="k=5"):
        pass_at_k(4, 1, 5)


def test_ks_and_the_mean_curve():
    assert ks_up_to(32) == [1, 2, 4, 8, 16, 32] and ks_up_to(6) == [1, 2, 4, 6] and ks_up_to(1) == [1]
    curve = pass_at_k_curve([0, 2, 4], 4)
    assert curve[1] == pytest.approx((0 + 0.5 + 1) / 3) and curve[4] == pytest.approx(2 / 3)
    assert list(curve) == [1, 2, 4]


def test_correct_counts_are_seeded_and_bounded(micro_model):
    problems = [(3, 4), (5, 6), (1, 2)]
    counts = correct_counts(micro_model, problems, 1, "comfort", 1.0, samples=5, seed=3)
    assert counts.shape == (3,) and ((counts >= 0) & (counts <= 5)).all()
    again = correct_counts(micro_model, problems, 1, "comfort", 1.0, samples=5, seed=3)
    assert (counts == again).all()


def test_cli_passk_writes_a_csv_and_a_plot(micro_reference_dir, tmp_path):
    from agents.cli import main

    code = main(
        ["passk", str(micro_reference_dir), "--out", str(tmp_path), "--problems", "3", "--samples", "4"]
        + ["--split", "plus1"]
    )
    assert code == 0
    with (tmp_path / "passk.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["k"]) for row in rows] == [1, 2, 4]
    values = [float(row["pass_at_k"]) for row in rows]
    assert values == sorted(values)  # pass@k never falls as k grows
    assert (tmp_path / "passk.png").stat().st_size > 0

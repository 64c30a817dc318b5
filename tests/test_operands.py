"""The seeded operand samplers of the spec's comfort and plus{k} distributions."""

from __future__ import annotations

import numpy as np
import pytest

from arith_gym.operands import max_digits, sample_digit_counts, sample_number, sample_operands, split_offset

DRAWS = 4000


def _digit_counts(split: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs = [sample_operands(rng, split, n) for _ in range(DRAWS)]
    return np.array([(len(str(a)), len(str(b))) for a, b in pairs])


def test_same_seed_same_problems() -> None:
    rng_1, rng_2 = np.random.default_rng(7), np.random.default_rng(7)
    assert [sample_operands(rng_1, "plus2", 3) for _ in range(50)] == [
        sample_operands(rng_2, "plus2", 3) for _ in range(50)
    ]
    other = np.random.default_rng(8)
    assert [sample_operands(other, "plus2", 3) for _ in range(50)] != [
        sample_operands(np.random.default_rng(7), "plus2", 3) for _ in range(50)
    ]


def test_operands_are_python_ints() -> None:
    a, b = sample_operands(np.random.default_rng(0), "plus5", 20)
    assert type(a) is int and type(b) is int
    assert len(str(a)) == 25 or len(str(b)) == 25


@pytest.mark.parametrize("n", [1, 3, 5])
def test_comfort_digit_counts(n: int) -> None:
    counts = _digit_counts("comfort", n)
    assert counts.min() == 1 and counts.max() == n
    for side in (0, 1):  # uniform in 1..N
        frequencies = np.bincount(counts[:, side], minlength=n + 1)[1:] / DRAWS
        assert np.allclose(frequencies, 1 / n, atol=0.05)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (3, 1), (3, 2), (5, 3)])
def test_plus_k_digit_counts(n: int, k: int) -> None:
    counts = _digit_counts(f"plus{k}", n)
    longest = counts.max(axis=1)
    assert (longest == n + k).all()  # one side has exactly N+k digits
    assert counts.min() >= 1
    # The long side is left or right with probability 1/2 (ties count as both).
    left_long = counts[:, 0] == n + k
    right_long = counts[:, 1] == n + k
    assert abs(left_long.mean() - right_long.mean()) < 0.05
    # The other side: 1..N with probability 1/2, else N+1..N+k.
    other = counts.min(axis=1)
    assert abs((other <= n).mean() - 0.5) < 0.05
    in_comfort = np.bincount(other[other <= n], minlength=n + 1)[1:] / (other <= n).sum()
    assert np.allclose(in_comfort, 1 / n, atol=0.06)


def test_sample_number_covers_each_digit_count_uniformly() -> None:
    rng = np.random.default_rng(1)
    one_digit = {sample_number(rng, 1) for _ in range(500)}
    assert one_digit == set(range(10))  # 1-digit numbers include 0
    for digits in (2, 7, 30):
        values = [sample_number(rng, digits) for _ in range(200)]
        assert all(len(str(v)) == digits for v in values)
    leading = [str(sample_number(rng, 3))[0] for _ in range(2000)]
    assert set(leading) == set("123456789")


@pytest.mark.parametrize(("split", "offset"), [("comfort", 0), ("plus1", 1), ("plus12", 12)])
def test_split_offset(split: str, offset: int) -> None:
    assert split_offset(split) == offset
    assert max_digits(split, 3) == 3 + offset


@pytest.mark.parametrize("bad", ["plus0", "plus", "plus-1", "Comfort", "plus01", "", 1, None])
def test_bad_split_raises(bad: object) -> None:
    with pytest.raises(ValueError, match="split"):
        split_offset(bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_comfort_digits_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="comfort_digits"):
        sample_digit_counts(np.random.default_rng(0), "plus1", bad)


def test_bad_digit_count_raises() -> None:
    with pytest.raises(ValueError, match="digits"):
        sample_number(np.random.default_rng(0), 0)

"""The seeded operand samplers of the spec's comfort and plus{k} distributions."""

from __future__ import annotations

import numpy as np
import pytest

from arith_gym.operands import (
    draw_operands,
    max_digits,
    sample_digit_counts,
    sample_number,
    sample_operands,
    split_offset,
)

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
    with pytest.raises(ValueError, match="comfort_digits"):
        sample_operands(np.random.default_rng(0), "plus1", bad)


def test_sample_operands_checks_the_split() -> None:
    with pytest.raises(ValueError, match="split"):
        sample_operands(np.random.default_rng(0), "plus0", 3)


def test_bad_digit_count_raises() -> None:
    with pytest.raises(ValueError, match="digits"):
        sample_number(np.random.default_rng(0), 0)


def test_seeded_draws_are_pinned() -> None:
    """Concrete draws: a change to the samplers' use of the generator must show up here."""
    rng = np.random.default_rng(0)
    assert [sample_operands(rng, "plus1", 3) for _ in range(4)] == [
        (30, 1018),
        (9976, 5592),
        (85, 1778),
        (1502, 5440),
    ]
    rng = np.random.default_rng(1)
    assert [sample_operands(rng, "comfort", 3) for _ in range(4)] == [(79, 11), (338, 428), (6, 50), (7, 858)]
    rng = np.random.default_rng(2)
    assert [draw_operands(rng, 3, 5) for _ in range(3)] == [(48, 50368791), (2, 63521746), (69, 98633013)]
    rng = np.random.default_rng(3)
    assert [sample_number(rng, d) for d in (1, 2, 7, 30)] == [8, 11, 3188500, 346421670143854465177972366682]
    rng = np.random.default_rng(4)
    assert [sample_digit_counts(rng, "plus2", 4) for _ in range(4)] == [(6, 6), (4, 6), (6, 3), (4, 6)]


# The samplers as the spec first wrote them (one array call for a number's digits after the
# leading one), kept here only as an oracle: the implementation must draw the same values
# and leave the generator in the same state.


def _reference_number(rng: np.random.Generator, digits: int) -> int:
    if digits == 1:
        return int(rng.integers(0, 10))
    leading = int(rng.integers(1, 10))
    rest = rng.integers(0, 10, size=digits - 1)
    return int(str(leading) + "".join(map(str, rest.tolist())))


def _reference_operands(rng: np.random.Generator, split: str, n: int) -> tuple[int, int]:
    offset = split_offset(split)
    if offset == 0:
        counts = int(rng.integers(1, n + 1)), int(rng.integers(1, n + 1))
    else:
        long_side = int(rng.integers(0, 2))
        if rng.random() < 0.5:
            other = int(rng.integers(1, n + 1))
        else:
            other = int(rng.integers(n + 1, n + offset + 1))
        counts = (n + offset, other) if long_side == 0 else (other, n + offset)
    return _reference_number(rng, counts[0]), _reference_number(rng, counts[1])


@pytest.mark.parametrize("split", ["comfort", "plus1", "plus3"])
@pytest.mark.parametrize("comfort_digits", [1, 3, 5])
def test_samplers_draw_what_the_reference_draws(split: str, comfort_digits: int) -> None:
    for seed in range(10):
        reference = np.random.default_rng(seed)
        checked, fast = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(50):
            expected = _reference_operands(reference, split, comfort_digits)
            assert sample_operands(checked, split, comfort_digits) == expected
            assert draw_operands(fast, split_offset(split), comfort_digits) == expected
        # The generators are in the same state.
        assert reference.random() == checked.random() == fast.random()


def test_sample_number_draws_what_the_reference_draws() -> None:
    reference, rng = np.random.default_rng(5), np.random.default_rng(5)
    for digits in [*range(1, 41), 100, 3, 1, 6, 5]:
        for _ in range(20):
            assert sample_number(rng, digits) == _reference_number(reference, digits)
    assert reference.random() == rng.random()

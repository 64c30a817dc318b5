"""Small-sample statistics for comparing runs across seeds (Student t intervals)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values with its two-sided 95% Student t interval (NaN bounds for n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.3f} (n={self.n}, no interval)"
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"

    def percent(self, signed: bool = False) -> str:
        """``mean [low, high]`` in percentage points (``mean (n=1, no interval)`` for one value)."""
        sign = "+" if signed else ""
        if self.n < 2:
            return f"{100 * self.mean:{sign}.1f} (n={self.n}, no interval)"
        return f"{100 * self.mean:{sign}.1f} [{100 * self.low:{sign}.1f}, {100 * self.high:{sign}.1f}]"

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean of ``values`` and its Student t confidence interval (seeds are few: not a normal one)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(data.mean())
    if data.size < 2:
        return Estimate(mean, float("nan"), float("nan"), int(data.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1) / np.sqrt(data.size))
    return Estimate(mean, mean - half, mean + half, int(data.size))


def paired_difference(treatment: Sequence[float], control: Sequence[float], confidence: float = 0.95):
    """Mean of ``treatment[i] - control[i]`` (the same seed i) with its t interval.

    Pairing by seed removes what the two runs of a seed share (problems drawn, evaluation set).
    """
    if len(treatment) != len(control):
        raise ValueError(f"paired values differ in number: {len(treatment)} vs {len(control)}")
    return mean_ci(np.asarray(treatment, dtype=float) - np.asarray(control, dtype=float), confidence)

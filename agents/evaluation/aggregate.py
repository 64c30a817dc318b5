"""Aggregate metrics over few runs, as RL benchmarking practice reports them (Agarwal et al. 2021,
"Deep Reinforcement Learning at the Edge of the Statistical Precipice", and its ``rliable`` library).

A method's scores are a matrix ``[runs, tasks]`` (here: seeds x reference models, the tasks being
the strata). With numpy and scipy only, following ``rliable``'s definitions:

* :func:`iqm` — the interquartile mean: the mean of the middle 50 % of all run-task scores
  (``scipy.stats.trim_mean(..., 0.25)``), robust to one outlying seed and less noisy than the median;
* :func:`probability_of_improvement` — P(X > Y): for each task, the share of (run of X, run of Y)
  pairs in which X scores higher, ties counting one half (the Mann-Whitney U statistic over
  ``n_x n_y``), averaged over tasks. It compares *unpaired* runs; the package's paired-by-seed
  differences are the summary's Δ column;
* :func:`performance_profile` — the share of run-task scores above each threshold τ;
* :func:`stratified_bootstrap` — percentile intervals of any of them from resampling runs with
  replacement *within each task* (the strata), each method independently.

Why not ``rliable`` itself: it would bring ``arch``, ``statsmodels``, ``seaborn``, ``formulaic``,
``patsy`` and ``narwhals`` (8 packages with it) for three estimators of a few lines each;
``tests/test_aggregate.py`` pins these against hand-computed values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

Scores = np.ndarray
"""A method's scores ``[runs, tasks]``."""


def as_scores(values: Sequence[float] | np.ndarray) -> Scores:
    """``values`` as a ``[runs, tasks]`` float matrix (a 1-D sequence is one task)."""
    scores = np.asarray(values, dtype=float)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty [runs, tasks] matrix, got shape {scores.shape}")
    return scores


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """The interquartile mean of every run-task score (25 % trimmed from each end)."""
    return float(stats.trim_mean(as_scores(scores).ravel(), proportiontocut=0.25))


def probability_of_improvement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """P(X > Y), ties counting one half, per task over every pair of runs, averaged over tasks."""
    x, y = as_scores(x), as_scores(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X and Y must have the same tasks, got {x.shape[1]} and {y.shape[1]}")
    per_task = []
    for task in range(x.shape[1]):
        a, b = x[:, task][:, None], y[:, task][None, :]
        per_task.append(float(np.mean((a > b) + 0.5 * (a == b))))
    return float(np.mean(per_task))


def performance_profile(scores: Sequence[float] | np.ndarray, taus: Sequence[float]) -> np.ndarray:
    """The share of run-task scores strictly above each ``tau``."""
    flat = as_scores(scores).ravel()
    return np.array([float(np.mean(flat > tau)) for tau in taus])


def _resample(scores: Scores, rng: np.random.Generator) -> Scores:
    """Runs drawn with replacement within each task (column) independently."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(runs, tasks))
    return np.take_along_axis(scores, rows, axis=0)


def stratified_bootstrap(
    statistic: Callable[..., float | np.ndarray],
    *score_sets: Sequence[float] | np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``statistic(*score_sets)`` and its percentile interval over ``reps`` stratified resamples.

    Each score set (a method's ``[runs, tasks]``) is resampled on its own, runs with replacement
    within each task. Returns ``(point, low, high)`` (arrays; 0-d for a scalar statistic);
    deterministic for a ``seed``.
    """
    if reps < 1 or not 0 < confidence < 1:
        raise ValueError(f"reps must be >= 1 and confidence in (0, 1), got {reps}, {confidence}")
    sets = [as_scores(scores) for scores in score_sets]
    rng = np.random.default_rng(seed)
    point = np.asarray(statistic(*sets), dtype=float)
    draws = np.array(
        [np.asarray(statistic(*(_resample(s, rng) for s in sets)), dtype=float) for _ in range(reps)]
    )
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    return point, low, high

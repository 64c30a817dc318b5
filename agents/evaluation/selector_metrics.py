"""How well a selector's scores and picks find the ground-truth critical tokens.

The classes are very unequal (a fraction of a percent of tokens is critical), so ranking quality is
the area under the precision-recall curve (average precision), not AUROC. Every metric weighs a
token by 1 / its inclusion probability (:class:`~agents.evaluation.criticality.CriticalityConfig`'s
``after_deviation``), so left-out positions after a deviation are represented; tokens whose
headroom is unknown are left out. Ties in a score are broken in expectation (a tied block counts
pro rata), so a constant score scores as random. Intervals: a bootstrap over problems (a table's
``group``), the same resamples for every selector, so differences between selectors are paired.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from agents.evaluation.criticality_table import CriticalityTable

SURE = 0.9
"""A critical token is *sure* when the policy's top token there has at least this probability
(no certainty selector can single it out: the policy looks as certain there as anywhere)."""
LOST = 0.05
"""A pick is at a *lost* state when V_t is below this (the episode has already gone wrong)."""
METRICS = (
    "budget",
    "precision",
    "recall",
    "headroom_share",
    "recall_at_1",
    "recall_at_5",
    "auprc",
    "spearman",
    "recall_fork",
    "recall_sure",
    "lost_picks",
)


def ranked_recall(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, share: float) -> float:
    """Recall of the top ``share`` of (weighted) tokens by score, ties counted pro rata."""
    total = weights[labels].sum()
    if total == 0:
        return float("nan")
    levels, inverse = np.unique(-scores, return_inverse=True)
    level_weight = np.bincount(inverse, weights)
    level_positive = np.bincount(inverse, weights * labels)
    budget = share * weights.sum()
    before = np.concatenate([[0.0], np.cumsum(level_weight)[:-1]])
    taken = np.clip((budget - before) / np.maximum(level_weight, 1e-300), 0.0, 1.0)
    return float((taken * level_positive).sum() / total)


def average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Area under the precision-recall curve (weighted average precision; a tied block is one step)."""
    total = weights[labels].sum()
    if total == 0:
        return float("nan")
    _, inverse = np.unique(-scores, return_inverse=True)
    positive = np.cumsum(np.bincount(inverse, weights * labels))
    everything = np.cumsum(np.bincount(inverse, weights))
    gained = np.diff(np.concatenate([[0.0], positive]))
    return float((gained / total * positive / everything).sum())


def selector_metrics(
    table: CriticalityTable, scores: np.ndarray, picks: np.ndarray, rows: np.ndarray | None = None
) -> dict[str, float]:
    """The :data:`METRICS` of one selector on ``table`` (restricted to ``rows``, with repeats)."""
    known = np.flatnonzero(table.known) if rows is None else rows[table.known[rows]]
    weights = 1.0 / table.inclusion[known]
    labels, headroom = table.critical[known], np.clip(table.headroom[known], 0.0, None)
    score, picked = scores[known], picks[known]
    sure = table.top_prob[known] >= SURE

    def share(mask: np.ndarray, of: np.ndarray) -> float:
        total = (weights * of).sum()
        return float((weights * of * mask).sum() / total) if total > 0 else float("nan")

    constant = len(score) < 2 or np.ptp(score) == 0 or np.ptp(headroom) == 0
    return {
        "budget": share(picked, np.ones_like(picked)),
        "precision": share(labels, picked),
        "recall": share(picked, labels),
        "headroom_share": share(picked, headroom),
        "recall_at_1": ranked_recall(score, labels, weights, 0.01),
        "recall_at_5": ranked_recall(score, labels, weights, 0.05),
        "auprc": average_precision(score, labels, weights),
        "spearman": float("nan") if constant else float(spearmanr(score, headroom).statistic),
        "recall_fork": share(picked, labels & ~sure),
        "recall_sure": share(picked, labels & sure),
        "lost_picks": share(table.value[known] < LOST, picked),
    }


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's point estimate on all problems and its bootstrap percentile interval."""

    value: float
    low: float
    high: float


def bootstrap_rows(table: CriticalityTable, resamples: int, seed: int) -> list[np.ndarray]:
    """``resamples`` resamplings of the table's problems (with replacement), as row indices."""
    groups = np.unique(table.group)
    members = [np.flatnonzero(table.group == g) for g in groups]
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([members[i] for i in rng.integers(0, len(groups), len(groups))])
        for _ in range(resamples)
    ]


def benchmark_metrics(
    table: CriticalityTable,
    selections: Mapping[str, tuple[np.ndarray, np.ndarray]],
    resamples: int = 500,
    seed: int = 0,
    coverage: float = 0.95,
) -> dict[str, dict[str, MetricEstimate]]:
    """Selector name -> metric -> estimate with a paired bootstrap interval over problems.

    ``selections``: selector name -> (scores, picks) on ``table``.
    """
    rows = bootstrap_rows(table, resamples, seed)
    tail = 100 * (1 - coverage) / 2
    out = {}
    for name, (scores, picks) in selections.items():
        point = selector_metrics(table, scores, picks)
        drawn = np.array([[selector_metrics(table, scores, picks, r)[m] for m in METRICS] for r in rows])
        with warnings.catch_warnings():  # a metric undefined on every resample stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(drawn, [tail, 100 - tail], axis=0)
        bounds = zip(METRICS, low, high, strict=True)
        out[name] = {m: MetricEstimate(point[m], float(lo), float(hi)) for m, lo, hi in bounds}
    return out


def ground_truth_summary(table: CriticalityTable) -> dict[str, float]:
    """What the ground truth holds: tokens, critical share, the share of critical headroom at sure
    tokens, the share of critical tokens after a deviation, and the success rate."""
    known = table.known
    weights = 1.0 / table.inclusion[known]
    critical = table.critical[known]
    headroom = np.clip(table.headroom[known], 0.0, None) * critical
    sure = table.top_prob[known] >= SURE
    return {
        "tokens": float(len(table)),
        "episodes": float(len(np.unique(table.group.astype(np.int64) * 1000 + table.episode))),
        "problems": float(len(np.unique(table.group))),
        "critical_share": float((weights * critical).sum() / weights.sum()),
        "critical_tokens": float(critical.sum()),
        "sure_headroom_share": float(
            (weights * headroom * sure).sum() / max((weights * headroom).sum(), 1e-300)
        ),
        "after_deviation_share": float(
            (weights * critical * table.deviated[known]).sum() / max((weights * critical).sum(), 1e-300)
        ),
        "success": float(table.reward[table.position == 0].mean()),
        "evaluated": float(table.evaluated.sum()),
    }

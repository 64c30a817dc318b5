"""How well a selector's scores and picks find the ground-truth critical tokens.

The classes are very unequal (a fraction of a percent of tokens is critical), so ranking quality is
the area under the precision-recall curve (average precision), not AUROC. Every metric weighs a
token by 1 / its inclusion probability (:class:`~agents.evaluation.criticality.CriticalityConfig`'s
``after_deviation``), so left-out positions after a deviation are represented; tokens whose
headroom is unknown are left out. Ties in a score are broken in expectation (a tied block counts
pro rata), so a constant score scores as random. Intervals: a bootstrap over problems (a table's
``group``; a resample weighs each token by how often its problem was drawn), the same resamples
for every selector, so differences between selectors are paired; Spearman's ρ gets its point only.
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
    return float(_ranked(scores, labels, np.asarray(weights, dtype=np.float64)[None], (share,))[1][0, 0])


def average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Area under the precision-recall curve (weighted average precision; a tied block is one step)."""
    return float(_ranked(scores, labels, np.asarray(weights, dtype=np.float64)[None], ())[0][0])


def _ranked(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, shares: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Average precision ``[R]`` and recall at each top share ``[R, len(shares)]`` for R weightings
    ``[R, n]`` of the same tokens: one sort, then cumulative sums per weighting."""
    levels = np.unique(-scores, return_inverse=True)[1]
    order = np.argsort(levels, kind="stable")
    ends = np.append(np.flatnonzero(np.diff(levels[order])), len(order) - 1)  # each tied block's last
    ordered = weights[:, order]
    seen = ordered.cumsum(axis=1)[:, ends]  # weight up to and with each block  [R, blocks]
    found = (ordered * labels[order]).cumsum(axis=1)[:, ends]
    total, everything = found[:, -1:], seen[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        gained = np.diff(found, axis=1, prepend=0.0)
        precision = np.where(seen > 0, found / np.where(seen > 0, seen, 1.0), 0.0)
        ap = (gained * precision).sum(axis=1) / total[:, 0]
        block = np.diff(seen, axis=1, prepend=0.0)
        recalls = []
        for share in shares:  # a tied block straddling the budget counts pro rata
            taken = np.clip((share * everything - (seen - block)) / np.where(block > 0, block, 1.0), 0.0, 1.0)
            recalls.append((taken * gained).sum(axis=1) / total[:, 0])
    ap[total[:, 0] == 0] = np.nan
    return ap, np.stack(recalls, axis=1) if recalls else np.zeros((len(weights), 0))


def _metric_rows(
    table: CriticalityTable, scores: np.ndarray, picks: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The :data:`METRICS` ``[R, metrics]`` of one selector for R weightings ``[R, known tokens]``
    (Spearman's ρ left NaN)."""
    known = table.known
    labels, headroom = table.critical[known], np.clip(table.headroom[known], 0.0, None)
    picked, sure = picks[known], table.top_prob[known] >= SURE
    lost = table.value[known] < LOST

    def share(mask: np.ndarray, of: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights @ (of * mask)) / (weights @ of)

    ap, recalls = _ranked(scores[known], labels, weights, (0.01, 0.05))
    columns = {
        "budget": share(picked, np.ones(len(picked))),
        "precision": share(labels, picked.astype(float)),
        "recall": share(picked, labels.astype(float)),
        "headroom_share": share(picked, headroom),
        "recall_at_1": recalls[:, 0],
        "recall_at_5": recalls[:, 1],
        "auprc": ap,
        "spearman": np.full(len(weights), np.nan),
        "recall_fork": share(picked, (labels & ~sure).astype(float)),
        "recall_sure": share(picked, (labels & sure).astype(float)),
        "lost_picks": share(lost, picked.astype(float)),
    }
    return np.stack([columns[m] for m in METRICS], axis=1)


def selector_metrics(table: CriticalityTable, scores: np.ndarray, picks: np.ndarray) -> dict[str, float]:
    """The :data:`METRICS` of one selector on ``table`` (tokens of unknown headroom left out)."""
    known = table.known
    row = _metric_rows(table, scores, picks, (1.0 / table.inclusion[known])[None])[0]
    out = dict(zip(METRICS, map(float, row), strict=True))
    score, headroom = scores[known], table.headroom[known]
    if len(score) > 1 and np.ptp(score) > 0 and np.ptp(headroom) > 0:
        out["spearman"] = float(spearmanr(score, headroom).statistic)
    return out


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's point estimate on all problems and its bootstrap percentile interval."""

    value: float
    low: float
    high: float


def bootstrap_multiplicities(table: CriticalityTable, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, tokens]``: how many times each token's problem is drawn in each resampling of
    the table's problems with replacement (the same as concatenating the drawn problems' rows)."""
    _, group_of_row = np.unique(table.group, return_inverse=True)
    groups = group_of_row.max() + 1
    rng = np.random.default_rng(seed)
    counts = np.stack(
        [np.bincount(rng.integers(0, groups, groups), minlength=groups) for _ in range(resamples)]
    )
    return counts[:, group_of_row].astype(np.float64)


def benchmark_metrics(
    table: CriticalityTable,
    selections: Mapping[str, tuple[np.ndarray, np.ndarray]],
    resamples: int = 500,
    seed: int = 0,
    coverage: float = 0.95,
) -> dict[str, dict[str, MetricEstimate]]:
    """Selector name -> metric -> estimate with a paired bootstrap interval over problems
    (Spearman's ρ: the point only).

    ``selections``: selector name -> (scores, picks) on ``table``.
    """
    weights = bootstrap_multiplicities(table, resamples, seed)[:, table.known] / table.inclusion[table.known]
    tail = 100 * (1 - coverage) / 2
    out = {}
    for name, (scores, picks) in selections.items():
        point = selector_metrics(table, scores, picks)
        with warnings.catch_warnings():  # a metric undefined on every resample stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(
                _metric_rows(table, scores, picks, weights), [tail, 100 - tail], axis=0
            )
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

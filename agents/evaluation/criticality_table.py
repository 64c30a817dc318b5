"""The ground truth's settings and its table: one row per generated token, one per explored arm.

:mod:`agents.evaluation.criticality` fills it; :func:`relabel` re-estimates a saved table from
its counts, at a coarser plausibility tier ε (a subset of the arms that ran) or another
threshold, without new sampling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from agents.evaluation.headroom import estimate_arms


@dataclass(frozen=True)
class CriticalityConfig:
    """How the ground truth is sampled (the defaults are the ones ``docs/criticality.md`` reports)."""

    problems: int = 8
    """Problems per seed, drawn from the held-out problems of ``split``."""
    group_size: int = 4
    """Episodes sampled per problem (group selectors compare the episodes of one problem)."""
    split: str = "plus1"
    temperature: float = 1.0
    epsilon: float = 1e-3
    """π(a) from which an arm is plausible for H (the label's tier)."""
    arm_floor: float = 1e-3
    """π(a) from which an arm gets continuations (<= ``epsilon``: coarser tiers reuse them; 1e-4
    costs about twice as much on the N = 3 reference)."""
    samples: int = 8
    """Continuations per arm, first round."""
    max_samples: int = 32
    """Continuations per arm at most, where H's interval straddles ``threshold``."""
    threshold: float = 0.5
    after_deviation: float = 0.25
    """Inclusion probability of a position after the episode first leaves the target (most of
    the cost is there: a lost episode's model is unsure at every step)."""
    draws: int = 400
    """Posterior draws per state for the intervals."""
    batch_size: int = 256

    def __post_init__(self) -> None:
        checks = {
            "problems": self.problems >= 1,
            "group_size": self.group_size >= 1,
            "temperature": self.temperature > 0,
            "epsilon": 0 < self.arm_floor <= self.epsilon < 1,
            "samples": 1 <= self.samples <= self.max_samples,
            "threshold": 0 < self.threshold <= 1,
            "after_deviation": 0 < self.after_deviation <= 1,
            "draws": self.draws >= 100,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"CriticalityConfig: invalid {bad[0]} ({asdict(self)})")


ARM_COLUMNS = ("arm_token_row", "arm_token", "arm_prob", "arm_successes", "arm_trials")


@dataclass(frozen=True)
class CriticalityTable:
    """Per generated token of every sampled episode (concatenated), and per explored arm.

    Ground truth: ``value``, ``headroom``, ``jump`` and their 95 % intervals (``*_low``/``*_high``),
    ``critical`` (headroom >= threshold at ``epsilon``), ``evaluated`` (continuations ran),
    ``inclusion`` (its probability). What selectors read: the policy's ``logp`` of the played
    token, ``entropy`` and ``top_prob`` at the sampling temperature; the reference's ``ref_logp`` and
    full ``ref_logits``; ``attention`` (mean attention later tokens pay to it); the env's
    ``structural`` labels; the episode's ``reward``; ``group`` (a problem of one seed).
    """

    seed: np.ndarray
    group: np.ndarray
    episode: np.ndarray
    position: np.ndarray
    token: np.ndarray
    reward: np.ndarray
    deviated: np.ndarray
    structural: np.ndarray
    logp: np.ndarray
    entropy: np.ndarray
    top_prob: np.ndarray
    ref_logp: np.ndarray
    ref_logits: np.ndarray
    attention: np.ndarray
    arms: np.ndarray
    evaluated: np.ndarray
    inclusion: np.ndarray
    value: np.ndarray
    value_low: np.ndarray
    value_high: np.ndarray
    headroom: np.ndarray
    headroom_low: np.ndarray
    headroom_high: np.ndarray
    jump: np.ndarray
    jump_low: np.ndarray
    jump_high: np.ndarray
    arm_token_row: np.ndarray
    arm_token: np.ndarray
    arm_prob: np.ndarray
    arm_successes: np.ndarray
    arm_trials: np.ndarray
    threshold: float = 0.5

    def __len__(self) -> int:
        return len(self.token)

    @property
    def critical(self) -> np.ndarray:
        """The ground-truth labels: headroom at least the threshold."""
        return np.nan_to_num(self.headroom, nan=-1.0) >= self.threshold

    @property
    def known(self) -> np.ndarray:
        """Tokens whose headroom is known (all but positions left out by ``after_deviation``)."""
        return ~np.isnan(self.headroom)

    def save(self, path: str | Path) -> None:
        """Write the table as a compressed ``.npz`` (plain arrays, no pickles), atomically."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "threshold"}
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as handle:  # a run killed mid-write leaves no half table behind
            np.savez_compressed(handle, threshold=np.float64(self.threshold), **arrays)
        os.replace(partial, path)

    @classmethod
    def load(cls, path: str | Path) -> CriticalityTable:
        """A table written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return cls(**{**arrays, "threshold": float(arrays["threshold"])})


def concat(tables: Sequence[CriticalityTable]) -> CriticalityTable:
    """Tables of disjoint problems as one (arm rows re-pointed at the joined token rows)."""
    if not tables:
        raise ValueError("concat needs at least one table")
    joined, offset = {}, 0
    parts: dict[str, list[np.ndarray]] = {
        f.name: [] for f in fields(CriticalityTable) if f.name != "threshold"
    }
    for table in tables:
        for name, column in parts.items():
            value = getattr(table, name)
            column.append(value + offset if name == "arm_token_row" else value)
        offset += len(table)
    for name, column in parts.items():
        joined[name] = np.concatenate(column)
    return CriticalityTable(**joined, threshold=tables[0].threshold)


def relabel(table: CriticalityTable, epsilon: float, threshold: float, draws: int = 400) -> CriticalityTable:
    """``table`` re-estimated from its saved counts at plausibility tier ``epsilon`` and critical
    ``threshold`` (no new continuation; a saved table then also gets the current intervals).

    The arms of π(a) >= ``epsilon`` must all have run (``epsilon`` at least the run's arm floor,
    which the caller checks): H's max then ranges over those, while V and D weigh every arm.
    """
    names = [f"{n}{s}" for n in ("value", "headroom", "jump") for s in ("", "_low", "_high")]
    columns = {name: getattr(table, name).copy() for name in names}
    rows = table.arm_token_row
    for row in np.unique(rows):
        arms = rows == row
        estimate = estimate_arms(
            table.arm_token[arms],
            table.arm_prob[arms],
            table.arm_successes[arms],
            table.arm_trials[arms],
            table.token[row],
            epsilon,
            np.random.default_rng(int(row)),
            draws,
        )
        for name in names:
            columns[name][row] = getattr(estimate, name)
    return replace(table, threshold=threshold, **columns)

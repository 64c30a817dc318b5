"""Do the criticality benchmark's scores predict the RL gains? (docs/criticality.md)

Pairs each ``arith-rl compare`` output with the ``arith-rl criticality`` output of the same
reference, takes every method that is also a selector (``critical``, ``critical_auto``,
``oracle_critical``, ``entropy_topk``, ...), and rank-correlates its gain over ``uniform`` (final
sampled plus1 accuracy, mean over seeds) with each benchmark metric, and with how much KL a
weighting lifts at the template's decision tokens, over methods × references::

    python examples/criticality_vs_rl.py \\
        --pair runs/compare-addition runs/crit-n3 --pair runs/compare-multiply runs/crit-multiply-n3
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from agents.evaluation.criticality_table import CriticalityTable, concat
from agents.rl.config import PRESETS
from agents.rl.selectors import SelectorContext, weighting_methods, weighting_selector
from agents.rl.weighting import TrainingProblems

METRICS = ("auprc", "recall_at_5", "recall", "precision", "headroom_share", "spearman", "decision_lift")
"""The benchmark's metrics, and ``decision_lift``: the mean 1 − w a KL weighting gives the env's
structural decision tokens while the episode is on the target (NaN for a method that is no KL
weighting)."""


def method_gains(compare_dir: Path, split: str = "plus1") -> dict[str, float]:
    """Each method's mean final sampled accuracy on ``split`` minus uniform's (points)."""
    last: dict[str, tuple[int, float, str]] = {}
    with open(compare_dir / "evaluations.csv") as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split or row["mode"] != "sampled":
                continue
            update = int(row["update"])
            if row["run"] not in last or update >= last[row["run"]][0]:
                last[row["run"]] = (update, float(row["accuracy"]), row["method"])
    by_method = defaultdict(list)
    for _, accuracy, method in last.values():
        by_method[method].append(accuracy)
    base = np.mean(by_method["uniform"])
    return {m: 100 * (np.mean(v) - base) for m, v in by_method.items() if m != "uniform"}


def selector_scores(criticality_dir: Path) -> dict[tuple[str, str], float]:
    with open(criticality_dir / "metrics.csv") as handle:
        return {(row["selector"], row["metric"]): float(row["value"]) for row in csv.DictReader(handle)}


@functools.cache
def saved_table(criticality_dir: Path) -> CriticalityTable:
    """A benchmark run's ground truth, every seed pooled (read once per run, not per method)."""
    return concat([CriticalityTable.load(p) for p in sorted(criticality_dir.glob("seed*/problem*.npz"))])


def decision_lift(criticality_dir: Path, method: str) -> float:
    """Mean 1 − w of ``method``'s KL weighting at the structural critical tokens on the target
    (``critical_auto`` at the β its benchmark run calibrated)."""
    settings = json.loads((criticality_dir / "settings.json").read_text())
    name = method
    if method in settings["selector_notes"]:  # e.g. "beta 1947"
        name = f"critical@beta={settings['selector_notes'][method].split()[1]}"
    if weighting_methods().get(method, "not a weighting") is not None:
        return float("nan")
    table = saved_table(criticality_dir)
    context = SelectorContext(None, TrainingProblems(settings["comfort_digits"], "plus1"), PRESETS["cpu"])
    weights = -weighting_selector(name).score(table, context)
    return float(1.0 - weights[table.structural & ~table.deviated].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pair", nargs=2, action="append", metavar=("COMPARE_DIR", "CRITICALITY_DIR"), required=True
    )
    args = parser.parse_args()
    rows = []
    for compare_dir, criticality_dir in args.pair:
        gains, scores = method_gains(Path(compare_dir)), selector_scores(Path(criticality_dir))
        for method, gain in gains.items():
            if (method, "auprc") in scores:
                values = [scores[(method, m)] for m in METRICS[:-1]]
                values.append(decision_lift(Path(criticality_dir), method))
                rows.append((Path(criticality_dir).name, method, gain, values))
    print("| reference | method | RL gain (points) | " + " | ".join(METRICS) + " |")
    print("|---|---|---|" + "---|" * len(METRICS))
    for reference, method, gain, values in rows:
        print(f"| {reference} | {method} | {gain:+.1f} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    gains = np.array([row[2] for row in rows])
    print(f"\nSpearman rank correlation with the RL gain over {len(rows)} method × reference pairs:")
    for index, metric in enumerate(METRICS):
        values = np.array([row[3][index] for row in rows])
        known = ~np.isnan(values)
        result = spearmanr(values[known], gains[known])
        print(f"- {metric}: rho = {result.statistic:+.2f} (p = {result.pvalue:.3f}, {known.sum()} pairs)")


if __name__ == "__main__":
    main()

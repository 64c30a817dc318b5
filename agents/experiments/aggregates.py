"""A comparison's aggregate metrics: IQM, probability of improvement, performance profiles.

:mod:`agents.evaluation.aggregate` computes them with stratified bootstrap intervals; this module
gathers each method's final scores from a comparison's evaluations and writes the summary's
section and ``profile.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from agents.evaluation.aggregate import (
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)
from agents.experiments.plots import save_figure
from agents.experiments.results import group_label

BOOTSTRAP_REPS = 2000
"""Stratified bootstrap resamples behind every interval of the section (seeded: reproducible)."""
PROFILE_TAUS = np.linspace(0.0, 1.0, 101)


def method_scores(per_run: list[dict], split: str) -> dict[str, np.ndarray]:
    """Method label -> its runs' final ``split`` accuracies ``[runs, 1]`` (one task: this reference)."""
    algos = [run["algo"] for run in per_run]
    scores: dict[str, list[float]] = {}
    for run in sorted(per_run, key=lambda r: r["seed"]):
        if split in run:
            scores.setdefault(group_label(run["algo"], run["method"], algos), []).append(run[split])
    return {label: np.asarray(values)[:, None] for label, values in scores.items()}


def _baseline(label: str) -> str:
    return f"{label.split(':')[0]}:uniform" if ":" in label else "uniform"


def aggregate_markdown(scores: dict[str, np.ndarray], split: str, reps: int = BOOTSTRAP_REPS) -> str:
    """The summary's section: each method's IQM and P(method > uniform), and P(row > column) for
    every pair, with 95% stratified bootstrap intervals."""
    if not scores:
        return ""
    lines = [
        "",
        f"## Aggregate metrics on `{split}` (IQM, probability of improvement)",
        "",
        f"Over each method's final accuracies (one score per run); 95% percentile intervals of "
        f"{reps} stratified bootstrap resamples of the runs (seeded); P(X > Y) compares every run "
        "of X with every run of Y, ties counting one half (not paired by seed: Δ above is).",
        "",
        f"| method | runs | IQM {split} % | P(method > uniform) |",
        "|---|---|---|---|",
    ]
    for label, values in scores.items():
        point, low, high = stratified_bootstrap(iqm, values, reps=reps)
        baseline = _baseline(label)
        improvement = "—"
        if baseline != label and baseline in scores:
            p, p_low, p_high = stratified_bootstrap(
                probability_of_improvement, values, scores[baseline], reps=reps
            )
            improvement = f"{p:.2f} [{p_low:.2f}, {p_high:.2f}]"
        interval = f"{100 * point:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
        lines.append(f"| {label} | {values.shape[0]} | {interval} | {improvement} |")
    labels = list(scores)
    if len(labels) > 2:
        lines += [
            "",
            "P(row > column):",
            "",
            "| | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for row in labels:
            cells = [
                "—" if row == column else f"{probability_of_improvement(scores[row], scores[column]):.2f}"
                for column in labels
            ]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_profiles(
    scores: dict[str, np.ndarray], split: str, out: str | Path, reps: int = BOOTSTRAP_REPS
) -> Path:
    """Performance profiles (share of runs above τ) with 95% stratified bootstrap bands, to a PNG."""
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for label, values in scores.items():
        point, low, high = stratified_bootstrap(
            lambda s: performance_profile(s, PROFILE_TAUS), values, reps=reps
        )
        (line,) = axis.plot(100 * PROFILE_TAUS, point, label=f"{label} ({values.shape[0]} runs)")
        axis.fill_between(100 * PROFILE_TAUS, low, high, color=line.get_color(), alpha=0.2)
    axis.set_xlabel(f"final {split} accuracy τ (%)")
    axis.set_ylabel("share of runs above τ")
    axis.set_title("performance profile (95% stratified bootstrap bands)")
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, out)

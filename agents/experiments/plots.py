"""Figures of training runs, written to PNG files.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), not pyplot:
that needs no display and leaves the caller's pyplot backend alone (inline plots in a
notebook keep working after ``import agents.experiments.plots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from agents.evaluation.stats import mean_ci
from agents.experiments.results import CURVE, curve_value, curves, group_label
from agents.rundir import read_metrics


def plot_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    split: str = "plus1",
) -> Path:
    """Sampled accuracy on ``split`` and on ``comfort`` against episodes seen, one line per run
    (every point on the intermediate evaluations' problems, the last one included)."""
    labels = list(labels) if labels else [Path(r).name for r in run_dirs]
    for run in run_dirs:  # an empty plot with rc 0 would look like a run that never learned
        if not any(f"{split}_sampled" in row for row in read_metrics(run)):
            raise ValueError(
                f"{run} has no {split!r} evaluation in its metrics.csv (--split names the run's split)"
            )
    figure = Figure(figsize=(10, 3.8))
    axes = figure.subplots(1, 2, sharex=True)
    for run, label in zip(run_dirs, labels, strict=True):
        rows = [r for r in read_metrics(run) if f"{split}_sampled" in r]
        episodes = [r["episodes"] for r in rows]
        for axis, name in zip(axes, (split, "comfort"), strict=True):
            accuracy = [100 * curve_value(r, f"{name}_sampled") for r in rows]
            axis.plot(episodes, accuracy, marker="o", ms=3, label=label)
    for axis, name in zip(axes, (split, "comfort"), strict=True):
        _accuracy_axis(axis, name, "% correct")
    axes[0].legend()
    return save_figure(figure, out)


def _accuracy_axis(axis, name: str, ylabel: str, problems: str = "") -> None:
    axis.set_title(f"{name}: sampled at the policy temperature{problems}")
    axis.set_xlabel("episodes")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)


def _band_line(axis, by_index: dict[int, list[tuple]], label: str, scale: float = 1.0) -> None:
    """One method's mean over seeds at each evaluation, with its 95% band."""
    x, mean, low, high = np.array([_mean_band(by_index[i]) for i in sorted(by_index)]).T
    (line,) = axis.plot(x, scale * mean, marker="o", ms=3, label=label)
    axis.fill_between(x, scale * low, scale * high, color=line.get_color(), alpha=0.2)


def _mean_band(points: list[tuple]) -> tuple[float, float, float, float]:
    """x (mean episodes), mean accuracy and its 95% t band over the seeds of one evaluation."""
    estimate = mean_ci([accuracy for _, _, accuracy in points])
    low, high = (estimate.low, estimate.high) if estimate.n > 1 else (estimate.mean, estimate.mean)
    return float(np.mean([episodes for _, episodes, _ in points])), estimate.mean, low, high


def problems_note(evaluations: list[dict], split: str) -> str:
    """How many problems each point of ``split``'s curves scores, for a title. The curves draw
    ``curve_accuracy`` (every point on the set's first problems); rows without it (a comparison from
    before it) draw ``accuracy``, whose final point scores the whole set: said, since a step into the
    last point may then be the problems changing, not the policy."""
    rows = [row for row in evaluations if row["split"] == split]
    sizes = sorted({int(row.get("curve_problems", row.get("problems", 0))) for row in rows} - {0})
    if len(sizes) > 1:
        return f"\n({sizes[0]} problems per point, the final {sizes[-1]})"
    return f" ({sizes[0]} problems per point)" if sizes else ""


def plot_comparison(evaluations: list[dict], split: str, out: str | Path) -> Path:
    """``split`` and comfort sampled accuracy vs episodes: mean line and 95% CI band per method."""
    figure = Figure(figsize=(10, 3.8))
    axes = figure.subplots(1, 2, sharex=True)
    for axis, name in zip(axes, (split, "comfort"), strict=True):
        for label, grouped in curves(evaluations, name, field=CURVE).items():  # in the order of the runs
            seeds = len(grouped[min(grouped)])
            _band_line(axis, grouped, f"{label} ({seeds} seed{'s' if seeds > 1 else ''})", scale=100)
        _accuracy_axis(axis, name, "% correct (mean, 95% CI)", problems_note(evaluations, name))
    axes[0].legend()
    return save_figure(figure, out)


def plot_critical(critical: list[dict], out: str | Path) -> Path:
    """p(right token) at each structural critical label over training, one panel per label."""
    labels = sorted({row["label"] for row in critical})
    algos = sorted({row["algo"] for row in critical})
    panels = max(1, len(labels))
    figure = Figure(figsize=(3.6 * panels, 3.4))
    axes = figure.subplots(1, panels, squeeze=False)
    for axis, label in zip(axes[0], labels, strict=False):
        grouped: dict[str, dict[int, list[tuple]]] = {}
        for row in critical:
            if row["label"] == label:
                key = group_label(row["algo"], row["method"], algos)
                grouped.setdefault(key, {}).setdefault(row["eval_index"], []).append(
                    (row["seed"], row["episodes"], row["probability"])
                )
        for key, by_index in grouped.items():
            _band_line(axis, by_index, key)
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("episodes")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("p(right token), on track")
    axes[0][0].legend(fontsize=8)
    return save_figure(figure, out)


def plot_passk(rows: list[dict], out: str | Path) -> Path:
    """pass@k against k (log scale), one line per ``model`` label: the mean over its rows (seeds),
    with a 95% band where there are several."""
    figure = Figure(figsize=(5.5, 3.8))
    axis = figure.subplots()
    by_label: dict[str, dict[int, list[tuple]]] = {}
    for row in rows:
        by_label.setdefault(row["model"], {}).setdefault(int(row["k"]), []).append(
            (row.get("seed", 0), int(row["k"]), float(row["pass_at_k"]))
        )
    for label, by_k in by_label.items():
        _band_line(axis, by_k, label, scale=100)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("k (samples per problem)")
    axis.set_ylabel("pass@k %")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, out)


def plot_by_reference(evaluations: dict[str, list[dict]], split: str, out: str | Path) -> Path:
    """One panel per reference model: ``split`` sampled accuracy vs episodes, mean and 95% band per method."""
    return _panels(evaluations, split, out, columns=len(evaluations), size=(4.2, 3.6), legend_on_all=False)


def plot_by_algorithm(evaluations: list[dict], split: str, out: str | Path) -> Path:
    """One panel per algorithm: ``split`` sampled accuracy vs episodes, mean and 95% band per method."""
    by_algo: dict[str, list[dict]] = {}
    for row in evaluations:
        by_algo.setdefault(row["algo"], []).append(row)
    return _panels(by_algo, split, out, columns=min(4, len(by_algo)), size=(3.6, 3.0), legend_on_all=True)


def _panels(
    panels: dict[str, list[dict]],
    split: str,
    out: str | Path,
    columns: int,
    size: tuple[float, float],
    legend_on_all: bool,
) -> Path:
    """A grid of panels (``columns`` wide), one per entry of ``panels``: its rows' ``split`` curves."""
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(size[0] * columns, size[1] * rows))
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for axis, (name, evaluations) in zip(axes, panels.items(), strict=False):
        for label, grouped in curves(evaluations, split, field=CURVE).items():
            _band_line(axis, grouped, label, scale=100)
        axis.set_title(f"{name}: {split}{problems_note(evaluations, split)}", fontsize=9)
        axis.set_xlabel("episodes")
        axis.grid(alpha=0.3)
        if legend_on_all:
            axis.legend(fontsize=7)
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    axes[0].set_ylabel("% correct (mean, 95% CI)")
    if not legend_on_all:
        axes[0].legend(fontsize=8)
    return save_figure(figure, out)


def save_figure(figure, out: str | Path) -> Path:
    """Lay ``figure`` out and write it to the PNG ``out`` (its folder made if needed)."""
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out

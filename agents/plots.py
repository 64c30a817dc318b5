"""Figures of training runs (matplotlib, written to PNG without a display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a screen
import matplotlib.pyplot as plt  # noqa: E402

from agents.train import read_metrics  # noqa: E402


def plot_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    split: str = "plus1",
) -> Path:
    """Sampled accuracy on ``split`` and on ``comfort`` against episodes seen, one line per run."""
    labels = list(labels) if labels else [Path(r).name for r in run_dirs]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for run, label in zip(run_dirs, labels, strict=True):
        rows = [r for r in read_metrics(run) if f"{split}_sampled" in r]
        episodes = [r["episodes"] for r in rows]
        for axis, name in zip(axes, (split, "comfort"), strict=True):
            axis.plot(episodes, [100 * r[f"{name}_sampled"] for r in rows], marker="o", ms=3, label=label)
    for axis, name in zip(axes, (split, "comfort"), strict=True):
        axis.set_title(f"{name}: sampled at the policy temperature")
        axis.set_xlabel("episodes")
        axis.set_ylabel("% correct")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out

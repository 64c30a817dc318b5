"""Methods x seeds on one reference model, one budget and one evaluation protocol.

:func:`compare` trains every (algorithm, method, seed) in parallel worker processes (or on a
Ray cluster), each into ``OUT/runs/<algo>-<method>-s<seed>/`` (an ``arith-rl train`` run
directory), then writes to ``OUT``:

* ``evaluations.csv``: every evaluation (run, algo, method, seed, update, episodes, split, mode, accuracy);
* ``critical.csv``: p(right token) at each structural critical label over training;
* ``accuracy.png``: ``plus{k}`` and ``comfort`` sampled accuracy vs episodes, mean and 95% CI across seeds;
* ``critical.png``: the critical-token probabilities over training (the paper's Figures 4 and 7);
* ``summary.md``: final accuracy per method with CI, the paired (same seed) difference to
  ``uniform`` with its CI, and the episodes each method needed to reach a threshold.

Runs already finished in ``OUT`` are kept and unfinished ones resume from their checkpoint,
so an interrupted comparison loses at most one evaluation interval per run.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents.experiments.jobs import CompareSettings
from agents.experiments.plots import plot_comparison, plot_critical
from agents.experiments.results import collect, summarize_methods, summary_markdown, timing_markdown
from agents.experiments.runners import BACKENDS, run_local, run_ray


def compare(
    settings: CompareSettings,
    out: str | Path,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    command: str = "",
) -> Path:
    """Run the comparison into ``out`` and write its CSVs, plots and summary; returns ``out/summary.md``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    out = Path(out)
    jobs = settings.jobs(out)
    out.mkdir(parents=True, exist_ok=True)
    if backend == "ray":
        run_ray(jobs, ray_address, progress)
    else:
        workers = workers or min(len(jobs), os.cpu_count() or 1)
        run_local(jobs, workers, progress)
    evaluations, critical, runs = collect(jobs, out)
    split = jobs[0].config.split
    plot_comparison(evaluations, split, out / "accuracy.png")
    plot_critical(critical, out / "critical.png")
    results, threshold = summarize_methods(evaluations, split, settings.threshold)
    summary = out / "summary.md"
    summary.write_text(summary_markdown(results, split, threshold, command) + timing_markdown(runs))
    return summary

"""agents.experiments: comparisons of algorithms and exploration methods across seeds.

- :mod:`~agents.experiments.jobs`: what a comparison runs (:class:`CompareSettings`, :class:`Job`);
- :mod:`~agents.experiments.runners`: a local process pool or Ray;
- :mod:`~agents.experiments.results`: evaluations as rows, per-method estimates, the summary;
- :mod:`~agents.experiments.plots`: accuracy and critical-token curves;
- :mod:`~agents.experiments.compare`: :func:`compare`, all of the above into one directory.
"""

from agents.experiments.compare import compare
from agents.experiments.jobs import CompareSettings, Job, algorithm_names, run_job
from agents.experiments.plots import plot_comparison, plot_critical, plot_runs
from agents.experiments.results import collect, summarize_methods, summary_markdown

__all__ = [
    "algorithm_names",
    "CompareSettings",
    "Job",
    "collect",
    "compare",
    "plot_comparison",
    "plot_critical",
    "plot_runs",
    "run_job",
    "summarize_methods",
    "summary_markdown",
]

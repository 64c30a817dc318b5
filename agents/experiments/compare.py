"""Methods x seeds on one reference model, one budget and one evaluation protocol.

:func:`compare` trains every (algorithm, method, seed) in parallel worker processes (or on a
Ray cluster), each into ``OUT/runs/<algo>-<method>-s<seed>/`` (an ``arith-rl train`` run
directory), then writes to ``OUT``:

* ``evaluations.csv``: every evaluation (run, algo, method, seed, update, episodes, split, mode, accuracy);
* ``critical.csv``: p(right token) at each structural critical label over training;
* ``errors.csv``: where the sampled failures first go wrong (critical, copy, carry, result, format);
* ``accuracy.png``: ``plus{k}`` and ``comfort`` sampled accuracy vs episodes, mean and 95% CI across seeds;
* ``critical.png``: the critical-token probabilities over training (the paper's Figures 4 and 7);
* ``eval_set.json``: the held-out problems every run was evaluated on (checked identical);
* ``summary.md``: final accuracy per method with CI, the paired (same seed) difference to
  ``uniform`` with its CI (and to ``oracle_critical`` when it ran), the episodes each method
  needed to reach a threshold, the interquartile mean and the probability of improvement over
  ``uniform`` (and between every pair) with stratified bootstrap intervals, which noise
  dominates (seeds or the evaluation's), and each run's accuracy with its Wilson interval;
* ``profile.png``: each method's performance profile (share of runs above a final accuracy τ).

Runs already finished in ``OUT`` are kept and unfinished ones resume from their checkpoint,
so an interrupted comparison loses at most one evaluation interval per run.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from agents.evaluation.heldout import EvalSet, heldout_eval_set
from agents.evaluation.passk import correct_counts, passk_rows
from agents.experiments.aggregates import aggregate_markdown, method_scores, plot_profiles
from agents.experiments.jobs import CompareSettings, Job, final_model_dir, job_status, runs_to_retrain
from agents.experiments.plots import (
    plot_by_algorithm,
    plot_by_reference,
    plot_comparison,
    plot_critical,
    plot_passk,
)
from agents.experiments.reports import (
    collect_errors,
    errors_markdown,
    final_runs,
    noise_verdict,
    passk_markdown,
    per_run_markdown,
    shared_eval_set,
)
from agents.experiments.results import (
    collect,
    group_label,
    oracle_gap_markdown,
    summarize_methods,
    summary_markdown,
    timing_markdown,
)
from agents.experiments.runners import BACKENDS, run_local, run_ray
from agents.lm.model import load_reference
from agents.run_identity import RunLock
from agents.rundir import write_rows


def compare(
    settings: CompareSettings,
    out: str | Path,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    command: str = "",
    passk_samples: int = 0,
    passk_problems: int = 64,
    retrain: bool = False,
) -> Path:
    """Run the comparison into ``out`` and write its CSVs, plots and summary; returns ``out/summary.md``.

    ``out`` is locked for the duration (a second comparison on it stops with one line). A run
    directory already in ``out`` is reused only if it holds a run of the very same job
    (:mod:`agents.backends.runs`); the ones trained otherwise or damaged are listed in one line and
    refused, or trained again with ``retrain``. Only finished runs are summarised.

    With several references (``settings.references``) every reference gets its own comparison
    in ``out/<reference name>/`` (``plus{k}`` relative to its own N), all trained in one pool,
    and ``out`` gets the summaries together and ``by_reference.png``.
    ``passk_samples`` > 0 also measures pass@k of the reference and of every run's final
    checkpoint on the first ``passk_problems`` held-out problems (``passk.csv``, ``passk.png``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    out = Path(out)
    by_reference = settings.jobs_by_reference(out)
    with RunLock(out):
        by_reference = _train_all(by_reference, out, workers, backend, ray_address, progress, retrain)
        return _report_all(by_reference, out, settings, command, passk_samples, passk_problems, progress)


def _train_all(
    by_reference: dict[str, list[Job]],
    out: Path,
    workers: int | None,
    backend: str,
    ray_address: str | None,
    progress: bool,
    retrain: bool,
) -> dict[str, list[Job]]:
    """Train every job (refusing, or retraining, the runs that cannot be reused); the jobs as run."""
    jobs = [job for group in by_reference.values() for job in group]
    stale = runs_to_retrain(jobs)
    if stale and not retrain:
        listed = "; ".join(f"{Path(run).relative_to(out)}: {why}" for run, why in stale.items())
        raise ValueError(
            f"{len(stale)} of {len(jobs)} runs in {out} cannot be reused ({listed}): "
            "pass --retrain to train them again, or use another --out"
        )
    by_reference = {
        name: [replace(job, retrain=job.run_dir in stale) for job in group]
        for name, group in by_reference.items()
    }
    jobs = [job for group in by_reference.values() for job in group]
    if backend == "ray":
        run_ray(jobs, ray_address, progress)
    else:
        workers = workers or min(len(jobs), os.cpu_count() or 1)
        run_local(jobs, workers, progress)
    for job in jobs:
        status = job_status(job)
        if status.state != "finished":
            raise ValueError(
                f"{job.run_dir} did not finish ({status.state}: {status.reason}); not summarised"
            )
    return by_reference


def _report_all(
    by_reference: dict[str, list[Job]],
    out: Path,
    settings: CompareSettings,
    command: str,
    passk_samples: int,
    passk_problems: int,
    progress: bool,
) -> Path:
    """Each reference's report, and with several references the summaries together."""
    jobs = [job for group in by_reference.values() for job in group]
    summaries = {}
    for name, group in by_reference.items():
        directory = out / name if len(by_reference) > 1 else out
        summaries[name] = report(group, directory, settings, command, passk_samples, passk_problems, progress)
    if len(by_reference) == 1:
        return next(iter(summaries.values()))
    plot_by_reference(
        {name: collect(group, out / name)[0] for name, group in by_reference.items()},
        jobs[0].config.split,
        out / "by_reference.png",
    )
    summary = out / "summary.md"
    parts = [
        f"# Comparison on {len(by_reference)} references",
        "",
        *([f"Command: `{command}`", ""] if command else []),
    ]
    for name, path in summaries.items():
        body = path.read_text().split("\n", 1)[1]  # its own title and command line give way to ours
        body = "\n".join(line for line in body.splitlines() if not line.startswith("Command: `"))
        parts += [f"# Reference `{name}`", body.lstrip("\n"), ""]
    summary.write_text("\n".join(parts))
    return summary


def report(
    jobs: list[Job],
    out: Path,
    settings: CompareSettings,
    command: str = "",
    passk_samples: int = 0,
    passk_problems: int = 64,
    progress: bool = True,
) -> Path:
    """The CSVs, plots and ``summary.md`` of the finished runs ``jobs`` (one reference) into ``out``."""
    eval_set_file = shared_eval_set(
        jobs, out
    )  # every run on the same held-out problems, saved with the results
    evaluations, critical, runs = collect(jobs, out)
    split = jobs[0].config.split
    plot_comparison(evaluations, split, out / "accuracy.png")
    if len({job.algo for job in jobs}) > 1:  # one panel per algorithm: methods side by side
        plot_by_algorithm(evaluations, split, out / "by_algorithm.png")
    plot_critical(critical, out / "critical.png")
    results, threshold = summarize_methods(evaluations, split, settings.threshold)
    per_run = final_runs(evaluations, split)
    scores = method_scores(per_run, split)
    plot_profiles(scores, split, out / "profile.png")
    summary = out / "summary.md"
    summary.write_text(
        summary_markdown(results, split, threshold, command)
        + aggregate_markdown(scores, split)
        + oracle_gap_markdown(evaluations, split)
        + noise_verdict(per_run, split)
        + timing_markdown(runs)
        + errors_markdown(collect_errors(jobs, out), split)
        + per_run_markdown(per_run, split)
    )
    if passk_samples > 0:
        eval_set = EvalSet.load(eval_set_file) if eval_set_file else None
        rows = passk_of_runs(jobs, split, eval_set, passk_samples, passk_problems, progress, settings.device)
        write_rows(out / "passk.csv", rows)
        plot_passk(rows, out / "passk.png")
        with summary.open("a") as handle:
            handle.write(passk_markdown(rows))
    return summary


def passk_of_runs(
    jobs: list[Job],
    split: str,
    eval_set: EvalSet | None,
    samples: int,
    problems: int,
    progress: bool = True,
    device: str = "cpu",
) -> list[dict]:
    """pass@k rows of the reference and of each run's final checkpoint (``model``: the method's label)."""
    algos = [job.algo for job in jobs]
    models = [("reference", -1, Path(jobs[0].reference))]
    models += [(group_label(job.algo, job.method, algos), job.seed, final_model_dir(job)) for job in jobs]
    rows = []
    for label, seed, model_dir in tqdm(models, desc="pass@k", disable=not progress):
        model, task = load_reference(model_dir)
        model = model.to(device)
        chosen = eval_set or heldout_eval_set(task.comfort_digits, split, problems, 1, task=task.task)
        counts = correct_counts(
            model,
            chosen.head(split, problems),
            task.comfort_digits,
            split,
            task.temperature,
            samples,
            task=chosen.task,
        )
        rows += [{**row, "seed": seed} for row in passk_rows(label, counts, samples)]
    return rows

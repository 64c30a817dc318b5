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

import csv
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from agents import MissingExtra
from agents.config import PRESETS, RLConfig
from agents.methods import apply_method
from agents.stats import Estimate, mean_ci, paired_difference

LOCAL_ALGOS = ("ppo", "a2c")
ALGOS = (*LOCAL_ALGOS, "sb3-ppo", "sb3-a2c")
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """One training run of the comparison."""

    algo: str
    method: str
    seed: int
    config: RLConfig
    reference: str
    run_dir: str
    threads: int = 1

    @property
    def name(self) -> str:
        return Path(self.run_dir).name


@dataclass(frozen=True)
class CompareSettings:
    """What ``arith-rl compare`` runs; the defaults are its embedded default comparison."""

    methods: tuple[str, ...] = ("uniform", "critical")
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    algos: tuple[str, ...] = ("ppo",)
    preset: str = "cpu"
    overrides: tuple[tuple[str, object], ...] = ()
    reference: str | None = None
    threshold: float | None = None
    """plus{k} accuracy to reach; None: the initial accuracy + 0.15."""

    def __post_init__(self) -> None:
        for algo in self.algos:
            if algo not in ALGOS:
                raise ValueError(f"unknown algorithm {algo!r}; expected some of {ALGOS}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if not self.methods or not self.seeds or not self.algos:
            raise ValueError("compare needs at least one method, seed and algorithm")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")

    def jobs(self, out: str | Path, threads: int = 1) -> list[Job]:
        """One job per (algorithm, method, seed); unknown methods or settings fail here, before any run."""
        from agents.model import DEFAULT_REFERENCE

        reference = str(self.reference or DEFAULT_REFERENCE)
        base = PRESETS[self.preset].with_overrides(**dict(self.overrides))
        jobs = []
        for algo in self.algos:
            for method in self.methods:
                config = apply_method(base, method)
                if algo in LOCAL_ALGOS:
                    config = config.with_overrides(algo=algo)
                for seed in self.seeds:
                    run_dir = Path(out) / "runs" / f"{algo}-{method}-s{seed}"
                    jobs.append(
                        Job(
                            algo,
                            method,
                            seed,
                            config.with_overrides(seed=seed),
                            reference,
                            str(run_dir),
                            threads,
                        )
                    )
        return jobs


# --------------------------------------------------------------------------- running


def run_job(job: Job, on_update: Callable[[dict], None] | None = None) -> str:
    """Train one job to the end (resuming or skipping work already in its run directory)."""
    import torch
    from transformers.utils import logging

    torch.set_num_threads(job.threads)
    logging.disable_progress_bar()  # one "Loading weights" bar per run would bury the overall one
    if job.algo not in LOCAL_ALGOS:
        from agents.sb3 import train_sb3

        if not _finished(job):
            _reset(Path(job.run_dir))  # an SB3 run cannot resume mid-way: start it again
            train_sb3(job.config, job.run_dir, job.reference, job.algo, on_update=on_update)
        return job.run_dir
    from agents.train import Trainer

    trainer = Trainer(job.config, job.reference, job.run_dir)
    if (Path(job.run_dir) / "checkpoint").exists():
        trainer.load()
    if trainer.update < job.config.num_updates:
        trainer.run(progress=False, on_update=on_update)
    return job.run_dir


def _finished(job: Job) -> bool:
    """Whether an SB3 run ended: its model is saved only after the final evaluation."""
    return (Path(job.run_dir) / "sb3_model.zip").is_file()


def episodes_done(job: Job) -> int:
    """Episodes a run directory already holds: what a resumed run will not train again."""
    from agents.train import read_metrics

    if job.algo not in LOCAL_ALGOS:  # an unfinished SB3 run starts again
        return job.config.total_episodes if _finished(job) else 0
    if not (Path(job.run_dir) / "metrics.csv").is_file():
        return 0
    rows = read_metrics(job.run_dir)
    return min(int(rows[-1]["episodes"]), job.config.total_episodes) if rows else 0


def _has_eval(row: dict[str, float]) -> bool:
    return any(key.endswith("_sampled") for key in row)


def _reset(run_dir: Path) -> None:
    for name in ("metrics.csv", "sb3_model.zip"):
        (run_dir / name).unlink(missing_ok=True)


def _worker_init(queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue


_PROGRESS_QUEUE = None


def _run_in_worker(job: Job) -> str:
    reported = episodes_done(job)

    def report_episodes(row: dict) -> None:
        nonlocal reported
        _PROGRESS_QUEUE.put(int(row["episodes"]) - reported)
        reported = int(row["episodes"])

    return run_job(job, on_update=report_episodes)


def run_local(jobs: Sequence[Job], workers: int, progress: bool = True) -> list[str]:
    """Run ``jobs`` in ``workers`` processes with one overall progress bar (episodes trained)."""
    import multiprocessing as mp
    import queue as queue_module
    from concurrent.futures import ProcessPoolExecutor, wait

    total = sum(job.config.total_episodes for job in jobs)
    bar = tqdm(
        total=total,
        initial=sum(map(episodes_done, jobs)),  # a resumed comparison shows what is left
        desc=f"compare ({len(jobs)} runs, {workers} workers)",
        unit="episode",
        disable=not progress,
    )
    # "spawn": forking a process that has loaded torch can deadlock its thread pools.
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        trained = manager.Queue()
        with ProcessPoolExecutor(workers, context, initializer=_worker_init, initargs=(trained,)) as pool:
            futures = [pool.submit(_run_in_worker, job) for job in jobs]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5)
                for future in done:
                    future.result()  # a failed run stops the comparison with its error
                while True:
                    try:
                        bar.update(trained.get_nowait())
                    except queue_module.Empty:
                        break
    bar.close()
    return [job.run_dir for job in jobs]


def run_ray(jobs: Sequence[Job], address: str | None = None, progress: bool = True) -> list[str]:
    """Run ``jobs`` as Ray tasks (``ray.init(address=address)``), one CPU per job thread."""
    try:
        import ray
    except ImportError:
        raise MissingExtra(
            "--backend ray needs Ray: pip install 'arith-gym[ray]' (or pip install ray)"
        ) from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(run_job)
    refs = [remote.options(num_cpus=job.threads).remote(job) for job in jobs]
    bar = tqdm(total=len(refs), desc=f"compare on Ray ({len(jobs)} runs)", disable=not progress)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done)
        bar.update(len(done))
    bar.close()
    return [job.run_dir for job in jobs]


# --------------------------------------------------------------------------- collecting


def collect(jobs: Sequence[Job], out: str | Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Every evaluation of every run (``evaluations.csv``, ``critical.csv``) and each run's
    training wall time (``runs.csv``: rollouts and updates, evaluations excluded)."""
    from agents.train import read_metrics

    evaluations, critical, runs = [], [], []
    for job in jobs:
        rows = read_metrics(job.run_dir)
        seconds = sum(row.get("update_seconds", 0.0) for row in rows)
        episodes = rows[-1]["episodes"]
        runs.append(
            dict(
                run=job.name,
                algo=job.algo,
                method=job.method,
                seed=job.seed,
                episodes=int(episodes),
                train_seconds=seconds,
                seconds_per_episode=seconds / max(episodes, 1),
            )
        )
        evals = [row for row in rows if _has_eval(row)]
        for index, row in enumerate(evals):
            base = {
                "run": job.name,
                "algo": job.algo,
                "method": job.method,
                "seed": job.seed,
                "eval_index": index,
                "update": int(row["update"]),
                "episodes": int(row["episodes"]),
            }
            for key, value in row.items():
                if key.endswith(("_sampled", "_greedy")):
                    split, mode = key.rsplit("_", 1)
                    evaluations.append({**base, "split": split, "mode": mode, "accuracy": value})
                elif key.startswith("p_critical/"):
                    critical.append({**base, "label": key.split("/", 1)[1], "probability": value})
    out = Path(out)
    _write_csv(out / "evaluations.csv", evaluations)
    _write_csv(out / "critical.csv", critical)
    _write_csv(out / "runs.csv", runs)
    return evaluations, critical, runs


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def group_label(algo: str, method: str, algos: Sequence[str]) -> str:
    """A method's name in tables and legends (prefixed by its algorithm when several are compared)."""
    return method if len(set(algos)) == 1 else f"{algo}:{method}"


def curves(evaluations: list[dict], split: str, mode: str = "sampled") -> dict[str, dict[int, list[tuple]]]:
    """label -> eval index -> [(seed, episodes, accuracy)] for one split and mode."""
    algos = sorted({row["algo"] for row in evaluations})
    grouped: dict[str, dict[int, list[tuple]]] = defaultdict(lambda: defaultdict(list))
    for row in evaluations:
        if row["split"] == split and row["mode"] == mode:
            label = group_label(row["algo"], row["method"], algos)
            grouped[label][row["eval_index"]].append((row["seed"], row["episodes"], row["accuracy"]))
    return grouped


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class MethodResult:
    label: str
    final: Estimate
    final_comfort: Estimate
    difference: Estimate | None
    """plus{k} final accuracy minus uniform's, paired by seed (None for uniform itself or without it)."""
    difference_comfort: Estimate | None
    episodes_to_threshold: Estimate | None
    reached: int
    seeds: int


def _final_by_seed(grouped: dict[int, list[tuple]]) -> dict[int, float]:
    last = max(grouped)
    return {seed: accuracy for seed, _, accuracy in grouped[last]}


def summarize(evaluations: list[dict], split: str, threshold: float | None = None):
    """Per-method results, and the threshold used (None: initial mean accuracy + 0.15)."""
    harder, comfort = curves(evaluations, split), curves(evaluations, "comfort")
    if threshold is None:
        initial = [acc for groups in harder.values() for _, _, acc in groups.get(0, [])]
        threshold = float(np.mean(initial)) + 0.15
    results = []
    for label, grouped in harder.items():
        final, final_comfort = _final_by_seed(grouped), _final_by_seed(comfort[label])
        seeds = sorted(final)
        baseline = _uniform_label(label)
        difference = difference_comfort = None
        if baseline != label and baseline in harder:
            base, base_comfort = _final_by_seed(harder[baseline]), _final_by_seed(comfort[baseline])
            shared = [seed for seed in seeds if seed in base]
            if shared:
                difference = paired_difference([final[s] for s in shared], [base[s] for s in shared])
                difference_comfort = paired_difference(
                    [final_comfort[s] for s in shared], [base_comfort[s] for s in shared]
                )
        reached_at = _episodes_to(grouped, threshold)
        results.append(
            MethodResult(
                label,
                mean_ci([final[s] for s in seeds]),
                mean_ci([final_comfort[s] for s in seeds]),
                difference,
                difference_comfort,
                mean_ci(list(reached_at.values())) if reached_at else None,
                len(reached_at),
                len(seeds),
            )
        )
    return results, threshold


def _uniform_label(label: str) -> str:
    return f"{label.split(':')[0]}:uniform" if ":" in label else "uniform"


def _episodes_to(grouped: dict[int, list[tuple]], threshold: float) -> dict[int, float]:
    """seed -> episodes at its first evaluation at or above ``threshold`` (seeds never there: absent)."""
    reached: dict[int, float] = {}
    for index in sorted(grouped):
        for seed, episodes, accuracy in grouped[index]:
            if seed not in reached and accuracy >= threshold:
                reached[seed] = episodes
    return reached


def summary_markdown(results: list[MethodResult], split: str, threshold: float, command: str = "") -> str:
    """The Markdown table of ``summary.md``, with a one-line verdict on critical vs uniform."""
    lines = [
        f"# Comparison on `{split}` (sampled at the policy temperature)",
        "",
        *([f"Command: `{command}`", ""] if command else []),
        f"Final accuracy: the last evaluation of each run; mean over seeds with a 95% t interval. "
        f"Δ: paired by seed against `uniform`. Threshold: {100 * threshold:.1f}% on `{split}`.",
        "",
        f"| method | seeds | {split} final % | comfort final % | Δ {split} vs uniform (points) "
        f"| Δ comfort (points) | episodes to {100 * threshold:.0f}% (runs that got there) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delta = r.difference.percent(signed=True) if r.difference else "—"
        delta_comfort = r.difference_comfort.percent(signed=True) if r.difference_comfort else "—"
        if r.episodes_to_threshold is None:
            episodes = f"not reached (0/{r.seeds})"
        else:
            e = r.episodes_to_threshold
            spread = f" [{e.low:.0f}, {e.high:.0f}]" if r.reached > 1 else ""
            episodes = f"{e.mean:.0f}{spread} ({r.reached}/{r.seeds})"
        lines.append(
            f"| {r.label} | {r.seeds} | {r.final.percent()} | {r.final_comfort.percent()} | {delta} "
            f"| {delta_comfort} | {episodes} |"
        )
    lines += ["", *(verdict(r) for r in results if r.difference is not None)]
    return "\n".join(lines) + "\n"


def timing_markdown(runs: list[dict]) -> str:
    """Training wall time per episode (evaluations excluded), per method, and its ratio to the fastest."""
    algos = sorted({run["algo"] for run in runs})
    per_label: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        per_label[group_label(run["algo"], run["method"], algos)].append(run["seconds_per_episode"])
    means = {label: float(np.mean(values)) for label, values in per_label.items()}
    fastest = min(means.values())
    lines = ["", "| method | training s / episode | ratio to the fastest |", "|---|---|---|"]
    lines += [f"| {label} | {s:.3f} | {s / fastest:.1f}x |" for label, s in sorted(means.items())]
    return "\n".join(lines) + "\n"


def verdict(result: MethodResult) -> str:
    """One sentence: did ``result`` beat uniform, with its paired CI?"""
    d = result.difference
    if d is None or np.isnan(d.low):
        return f"- `{result.label}` vs `uniform`: too few seeds for an interval."
    if d.excludes_zero:
        word = "beat" if d.mean > 0 else "did worse than"
        return (
            f"- `{result.label}` {word} `uniform`: {100 * d.mean:+.1f} points,"
            f" 95% CI [{100 * d.low:+.1f}, {100 * d.high:+.1f}] (n={d.n} seeds, excludes 0)."
        )
    return (
        f"- `{result.label}` vs `uniform`: {100 * d.mean:+.1f} points, 95% CI [{100 * d.low:+.1f},"
        f" {100 * d.high:+.1f}] (n={d.n} seeds): the interval includes 0, no significant difference."
    )


# --------------------------------------------------------------------------- entry point


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
    from agents.plots import plot_comparison, plot_critical

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
    results, threshold = summarize(evaluations, split, settings.threshold)
    summary = out / "summary.md"
    summary.write_text(summary_markdown(results, split, threshold, command) + timing_markdown(runs))
    return summary

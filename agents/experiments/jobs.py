"""The jobs of a comparison: which runs, with which settings, and how one of them is trained.

A job is one (algorithm, method, seed) on one reference model, trained into
``OUT/runs/<algo>-<method>-s<seed>/`` by the backend that trains its algorithm
(:mod:`agents.backends`: the package's own trainer, SB3, TRL or a plug-in's).
:func:`run_job` trains it to the end, resuming or skipping what its directory already holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from agents.backends import algorithm_names, backend_for
from agents.backends.restarting import finished
from agents.backends.runs import identity_differences, run_fingerprint, train_run
from agents.lm.model import DEFAULT_REFERENCE, load_task_info
from agents.rl.bookkeeping import evaluation_set
from agents.rl.config import PRESETS, RLConfig
from agents.rl.registry import load_plugins
from agents.run_identity import RETRAIN_HINT, RunStatus, run_status
from agents.rundir import METRICS, checkpoint_dir, read_metrics

__all__ = [
    "CompareSettings",
    "Job",
    "algorithm_names",
    "episodes_done",
    "final_model_dir",
    "job_status",
    "run_job",
    "runs_to_retrain",
]


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
    plugins: tuple[str, ...] = ()
    """Plug-in files the worker loads before it builds anything (their names are in ``config``)."""
    device: str = "cpu"
    retrain: bool = False
    """Delete what the run directory holds (a run of other settings, or a damaged one) and train again."""

    @property
    def name(self) -> str:
        return Path(self.run_dir).name


@dataclass(frozen=True)
class CompareSettings:
    """What ``arith-rl compare`` runs; the defaults are its embedded default comparison."""

    methods: tuple[str, ...] = ("uniform", "critical")
    seeds: tuple[int, ...] = tuple(range(8))
    """8 seeds: at 4 the interval of the paired difference was as wide as the effect (docs/results.md)."""
    algos: tuple[str, ...] = ("ppo",)
    preset: str = "cpu"
    overrides: tuple[tuple[str, object], ...] = ()
    reference: str | None = None
    references: tuple[str, ...] = ()
    """Several reference models (e.g. pre-trained on N = 2, 3, 4): the comparison runs on each."""
    threshold: float | None = None
    """plus{k} accuracy to reach; None: the initial accuracy + 0.15."""
    plugins: tuple[str, ...] = ()
    """Plug-in files (:func:`agents.rl.registry.load_plugin`), loaded here and in every worker."""
    device: str = "cpu"
    """Where the runs train (``cuda`` on a GPU machine; SB3 runs stay on the CPU)."""

    def __post_init__(self) -> None:
        load_plugins(self.plugins)
        for algo in self.algos:
            if algo not in algorithm_names():
                raise ValueError(f"unknown algorithm {algo!r}; registered: {', '.join(algorithm_names())}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if not self.methods or not self.seeds or not self.algos:
            raise ValueError("compare needs at least one method, seed and algorithm")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")

    def reference_dirs(self) -> dict[str, str]:
        """Name (the directory's) -> reference model directory, for each reference compared."""
        dirs = [str(ref) for ref in self.references] or [str(self.reference or DEFAULT_REFERENCE)]
        names = {Path(ref).name: ref for ref in dirs}
        if len(names) != len(dirs):
            raise ValueError(f"references must have distinct directory names, got {dirs}")
        return names

    def jobs_by_reference(self, out: str | Path, threads: int = 1) -> dict[str, list[Job]]:
        """Each reference's jobs; with several references, reference ``name``'s go to ``out/name/``."""
        names = self.reference_dirs()
        many = len(names) > 1
        return {
            name: self.jobs(Path(out) / name if many else out, threads, ref) for name, ref in names.items()
        }

    def jobs(self, out: str | Path, threads: int = 1, reference: str | None = None) -> list[Job]:
        """One job per (algorithm, method, seed) on ``reference`` (default: ``self.reference``, else the
        shipped one); unknown methods or settings fail here, before any run."""
        reference = str(reference or self.reference or DEFAULT_REFERENCE)
        jobs = []
        for algo in self.algos:
            backend = backend_for(algo)
            for method in self.methods:
                # preset, then the backend's settings for the algorithm and the method, then the user's --set
                config = backend.job_config(PRESETS[self.preset], algo, method)
                config = config.with_overrides(**dict(self.overrides))
                backend.check(config, algo)
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
                            self.plugins,
                            self.device,
                        )
                    )
        return jobs


def run_job(job: Job, on_update: Callable[[dict], None] | None = None) -> str:
    """Train one job to the end with its algorithm's backend (resuming or skipping work already in
    its run directory)."""
    torch.set_num_threads(job.threads)
    load_plugins(job.plugins)
    train_run(
        job.config,
        job.run_dir,
        job.reference,
        job.algo,
        method=job.method,
        on_update=on_update,
        device=job.device,
        retrain=job.retrain,
        hint=RETRAIN_HINT,
    )
    return job.run_dir


def episodes_done(job: Job) -> int:
    """Episodes a run directory already holds: what a resumed run will not train again."""
    if not backend_for(job.algo).resumable:  # an unfinished run starts again
        return job.config.total_episodes if finished(job.run_dir, job.config.total_episodes) else 0
    if not (Path(job.run_dir) / METRICS).is_file():
        return 0
    rows = read_metrics(job.run_dir)
    return min(int(rows[-1]["episodes"]), job.config.total_episodes) if rows else 0


def final_model_dir(job: Job) -> Path:
    """The model directory a finished run ended with (every backend saves one in ``checkpoint/``)."""
    return checkpoint_dir(job.run_dir)


def job_status(job: Job) -> RunStatus:
    """Whether ``job``'s run directory holds a finished, unfinished, damaged or no run
    (:func:`agents.run_identity.run_status`, against its held-out set's final sizes)."""
    eval_set = evaluation_set(job.config, load_task_info(job.reference))
    final_problems = {name: len(problems) for name, problems in eval_set.problems.items()}
    return run_status(job.run_dir, total_episodes=job.config.total_episodes, final_problems=final_problems)


def runs_to_retrain(jobs: list[Job]) -> dict[str, str]:
    """Run directory -> why, for each job whose directory holds a run it cannot reuse: one trained
    with other settings (what differs) or a damaged one (what is wrong)."""
    why = {}
    for job in jobs:
        wanted = run_fingerprint(job.config, job.algo, job.method, job.reference)
        differences = identity_differences(job.run_dir, wanted)
        if differences:
            why[job.run_dir] = "trained with other settings: " + ", ".join(differences)
        elif (status := job_status(job)).state == "damaged":
            why[job.run_dir] = f"damaged: {status.reason}"
    return why

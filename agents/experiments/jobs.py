"""The jobs of a comparison: which runs, with which settings, and how one of them is trained.

A job is one (algorithm, method, seed) on one reference model, trained into
``OUT/runs/<algo>-<method>-s<seed>/`` (an ``arith-rl train`` run directory, or an SB3 run).
:func:`run_job` trains it to the end, resuming or skipping what its directory already holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from agents.lm.model import DEFAULT_REFERENCE, TASK_FILE
from agents.rl.algorithms import ALGORITHMS, algorithm_and_method, check_config
from agents.rl.config import PRESETS, RLConfig
from agents.rl.registry import load_plugins
from agents.rl.trainer import open_trainer
from agents.rundir import METRICS, checkpoint_dir, read_metrics
from agents.sb3.train import SB3_ALGOS, SB3_SETTINGS, train_sb3

TRL_ALGOS = ("trl-grpo",)
"""TRL's GRPOTrainer with the weighted KL (:mod:`agents.trl`, an optional extra), at ``grpo``'s settings."""
RESTARTING_ALGOS = (*SB3_ALGOS, *TRL_ALGOS)
"""Runs that cannot resume mid-way: an unfinished one starts again."""


def algorithm_names() -> tuple[str, ...]:
    """Every algorithm a comparison can run: ``agents.rl``'s registered ones (plug-ins' too), SB3's, TRL's."""
    return (*ALGORITHMS.names(), *SB3_ALGOS, *TRL_ALGOS)


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
            local = algo in ALGORITHMS
            for method in self.methods:
                # preset, the algorithm's settings, the method's, SB3's (SB3_SETTINGS), then the user's --set
                settings_of = algo if local else "grpo" if algo in TRL_ALGOS else None
                config = algorithm_and_method(PRESETS[self.preset], settings_of, method)
                if algo in SB3_ALGOS:
                    config = config.with_overrides(**SB3_SETTINGS)
                config = config.with_overrides(**dict(self.overrides))
                if local:
                    check_config(config)
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
    """Train one job to the end (resuming or skipping work already in its run directory)."""
    torch.set_num_threads(job.threads)
    load_plugins(job.plugins)
    if job.algo in RESTARTING_ALGOS:
        if not _finished(job):
            _reset(Path(job.run_dir))  # an SB3 or TRL run cannot resume mid-way: start it again
            if job.algo in TRL_ALGOS:
                from agents.trl.train import train_trl_grpo  # an optional extra: imported when used

                train_trl_grpo(job.config, job.run_dir, job.reference, on_update, job.device)
            else:
                train_sb3(job.config, job.run_dir, job.reference, job.algo, on_update=on_update)
        return job.run_dir
    trainer = open_trainer(job.config, job.run_dir, job.reference, resume=None, device=job.device)
    if trainer.episodes < job.config.total_episodes:
        trainer.run(progress=False, on_update=on_update)
    return job.run_dir


def _finished(job: Job) -> bool:
    """Whether an SB3 or TRL run ended: its model is saved only after the final evaluation."""
    if job.algo in TRL_ALGOS:  # its model is saved in checkpoint/ at the end
        return (checkpoint_dir(job.run_dir) / TASK_FILE).is_file()
    return (Path(job.run_dir) / "sb3_model.zip").is_file()


def episodes_done(job: Job) -> int:
    """Episodes a run directory already holds: what a resumed run will not train again."""
    if job.algo in RESTARTING_ALGOS:  # an unfinished SB3 or TRL run starts again
        return job.config.total_episodes if _finished(job) else 0
    if not (Path(job.run_dir) / METRICS).is_file():
        return 0
    rows = read_metrics(job.run_dir)
    return min(int(rows[-1]["episodes"]), job.config.total_episodes) if rows else 0


def _reset(run_dir: Path) -> None:
    for name in (METRICS, "sb3_model.zip"):
        (run_dir / name).unlink(missing_ok=True)


def final_model_dir(job: Job) -> Path | None:
    """The model directory a finished run ended with (None for SB3 runs, which save an SB3 zip)."""
    return None if job.algo in SB3_ALGOS else checkpoint_dir(job.run_dir)

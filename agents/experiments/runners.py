"""Running a comparison's jobs: a local process pool or a Ray cluster, with one progress bar."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, wait

from tqdm.auto import tqdm

from agents import MissingExtra
from agents.experiments.jobs import Job, episodes_done, run_job
from agents.rl.registry import load_plugins

BACKENDS = ("local", "ray")


def _worker_init(queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue


_PROGRESS_QUEUE = None


def _run_in_worker(job: Job) -> str:
    load_plugins(job.plugins)  # a plug-in's algorithm names its backend
    reported = episodes_done(job)

    def report_episodes(row: dict) -> None:
        nonlocal reported
        _PROGRESS_QUEUE.put(int(row["episodes"]) - reported)
        reported = int(row["episodes"])

    return run_job(job, on_update=report_episodes)


def run_local(jobs: Sequence[Job], workers: int, progress: bool = True) -> list[str]:
    """Run ``jobs`` in ``workers`` processes with one overall progress bar (episodes trained)."""
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

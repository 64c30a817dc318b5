"""One run of any backend, with its identity: one writer, reuse only of the same run, a clean retrain.

:func:`train_run` is how ``arith-rl train`` and every job of ``arith-rl compare`` train: it takes
the run directory's lock (a second process on it stops with one line), refuses a directory that
holds a run trained with anything else that decides the result (settings, algorithm, method,
backend, the reference's weights, the evaluation set, the package version; one line naming what
differs) unless told to retrain it, records the fingerprint, and hands the run to its backend.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agents.backends import UpdateCallback, backend_for, backend_name
from agents.lm.model import load_task_info
from agents.rl.bookkeeping import REFERENCE_FILE, evaluation_set
from agents.rl.config import RLConfig
from agents.run_identity import (
    RunLock,
    check_fingerprint,
    fingerprint,
    fingerprint_differences,
    read_fingerprint,
    write_fingerprint,
)
from agents.rundir import LOCK_FILE, METRICS, check_not_foreign, checkpoint_dir

TRAIN_HINT = "use another --out (or delete it to train it again)"


def run_fingerprint(config: RLConfig, algo: str, method: str | None, reference: str | Path) -> dict:
    """Everything that decides the result of training ``reference`` with ``config`` and ``algo``
    (:func:`agents.run_identity.fingerprint`; the settings as asked for, before any calibration:
    what calibration chooses follows from them and the reference's weights)."""
    task = load_task_info(reference)
    eval_set = evaluation_set(config, task)
    return fingerprint(
        config,
        algo=algo,
        method=method,
        backend=backend_name(algo),
        reference_dir=reference,
        eval_set=eval_set.to_json(),
    )


def identity_differences(run_dir: str | Path, wanted: dict) -> list[str]:
    """What differs between the run in ``run_dir`` and ``wanted`` (empty: it may be reused, or it
    holds no run yet)."""
    run = Path(run_dir)
    saved = read_fingerprint(run)
    if saved is None and not checkpoint_dir(run).exists() and not (run / METRICS).exists():
        return []
    return fingerprint_differences(saved, wanted)


def clear_run(run_dir: str | Path) -> None:
    """Delete everything a run left in ``run_dir`` (but the lock its writer holds)."""
    run = Path(run_dir)
    if run.is_dir():
        for path in run.iterdir():
            if path.name == LOCK_FILE:
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def train_run(
    config: RLConfig,
    run_dir: str | Path,
    reference: str | Path,
    algo: str,
    *,
    method: str | None = None,
    on_update: UpdateCallback | None = None,
    device: str = "cpu",
    resume: bool | None = None,
    retrain: bool = False,
    hint: str = TRAIN_HINT,
) -> Path:
    """Train ``reference`` with ``config`` and ``algo`` into ``run_dir`` by its backend (see the
    module docstring). ``retrain``: delete a run of other settings (or a damaged one) and train
    it again; ``hint``: what the one-line refusal of another run suggests.

    Raises:
        agents.run_identity.RunInUse: another process is writing ``run_dir``.
        agents.run_identity.RunMismatch: ``run_dir`` holds a run trained otherwise.
    """
    run = Path(run_dir)
    check_not_foreign(run, REFERENCE_FILE)  # before anything is written there
    wanted = run_fingerprint(config, algo, method, reference)
    with RunLock(run):
        if retrain:
            clear_run(run)
        else:
            check_fingerprint(run, wanted, hint=hint)
        write_fingerprint(run, wanted)
        return backend_for(algo).train(config, run, Path(reference), algo, on_update, device, resume)

"""What the backends that cannot resume a run mid-way (SB3, TRL) share: an unfinished run starts again."""

from __future__ import annotations

import shutil
from pathlib import Path

from agents.backends import UpdateCallback
from agents.rl.config import RLConfig
from agents.run_identity import read_progress
from agents.rundir import CHECKPOINT, METRICS, checkpoint_dir


def finished(run_dir: str | Path, total_episodes: int) -> bool:
    """Whether a restarting backend's run ended: its checkpoint (saved last) holds the budget."""
    progress = read_progress(checkpoint_dir(run_dir))
    return progress is not None and progress.episodes >= total_episodes


def needs_training(run_dir: str | Path, total_episodes: int, resume: bool | None, backend: str) -> bool:
    """Whether a restarting backend's run must train, after the one rule for reusing a directory:
    ``resume=True`` is refused (it cannot continue a run mid-way), ``False`` refuses a directory
    that holds a run, ``None`` trains an unfinished one again and skips a finished one."""
    run = Path(run_dir)
    if resume:
        raise ValueError(f"{backend} runs cannot resume mid-way: train {run} again without --resume")
    if finished(run, total_episodes):
        if resume is False:
            raise FileExistsError(f"{run} already holds a finished run: choose another directory")
        return False
    if resume is False and (run / METRICS).is_file():
        raise FileExistsError(f"{run} already holds a run: choose another directory")
    return True


def reset(run_dir: str | Path) -> None:
    """Clear what an interrupted run of a restarting backend left (its logs and any checkpoint)."""
    run = Path(run_dir)
    (run / METRICS).unlink(missing_ok=True)
    for name in (CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp", "tb"):
        if (run / name).is_dir():
            shutil.rmtree(run / name)


class RestartingBackend:
    """What SB3's and TRL's backends share: ``train`` trains an unfinished run from scratch
    (:meth:`train_from_scratch`, theirs) after the one rule of :func:`needs_training`."""

    resumable = False
    label = "this backend's"

    def train(
        self,
        config: RLConfig,
        run_dir: Path,
        reference: Path,
        algo: str,
        on_update: UpdateCallback | None = None,
        device: str = "cpu",
        resume: bool | None = None,
    ) -> Path:
        if needs_training(run_dir, config.total_episodes, resume, self.label):
            reset(run_dir)
            self.train_from_scratch(config, Path(run_dir), Path(reference), algo, on_update, device)
        return Path(run_dir)

    def train_from_scratch(
        self, config: RLConfig, run_dir: Path, reference: Path, algo: str, on_update, device: str
    ) -> None:
        raise NotImplementedError

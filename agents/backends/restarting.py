"""What the backends that cannot resume a run mid-way (SB3, TRL) share: an unfinished run starts again."""

from __future__ import annotations

import shutil
from pathlib import Path

from agents.rl.bookkeeping import read_progress
from agents.rundir import CHECKPOINT, METRICS, checkpoint_dir


def finished(run_dir: str | Path, total_episodes: int) -> bool:
    """Whether a restarting backend's run ended: its checkpoint (saved last) holds the budget."""
    progress = read_progress(checkpoint_dir(run_dir))
    return progress is not None and progress["episodes"] >= total_episodes


def reset(run_dir: str | Path) -> None:
    """Clear what an interrupted run of a restarting backend left (its logs and any checkpoint)."""
    run = Path(run_dir)
    (run / METRICS).unlink(missing_ok=True)
    for name in (CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp", "tb"):
        if (run / name).is_dir():
            shutil.rmtree(run / name)

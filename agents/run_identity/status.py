"""Whether a run is finished: its checkpoint, its last metrics row and its final evaluation agree.

``metrics.csv`` alone is not believed: a row can be cut, lost or written twice. The checkpoint
says how far the run really went (``checkpoint/progress.json``, written inside the checkpoint so
that it lands with it atomically), and the last row must match it and hold the final evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agents.rundir import METRICS, checkpoint_dir, read_metrics

PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class Progress:
    """How far a checkpoint's run had gone: ``update`` updates, ``episodes`` episodes."""

    update: int
    episodes: int


def write_progress(checkpoint: str | Path, update: int, episodes: int) -> Path:
    """Write ``progress.json`` into ``checkpoint``, a checkpoint directory being filled (the ``tmp`` of
    :func:`agents.rundir.write_dir`, so that it lands with the checkpoint, atomically)."""
    path = Path(checkpoint) / PROGRESS_FILE
    path.write_text(json.dumps({"update": int(update), "episodes": int(episodes)}) + "\n")
    return path


def read_progress(checkpoint: str | Path) -> Progress | None:
    """The progress record of the checkpoint directory ``checkpoint`` (None when it has none).

    Raises:
        ValueError: the file is not ``{"update": int, "episodes": int}`` (one line naming it).
    """
    path = Path(checkpoint) / PROGRESS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        update, episodes = data["update"], data["episodes"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is unreadable ({type(err).__name__}: {err})") from None
    numbers = (update, episodes)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise ValueError(f"{path} is unreadable (update and episodes must be counts, got {data})")
    return Progress(update, episodes)


@dataclass(frozen=True)
class RunStatus:
    """Where a run directory stands, and why in one line.

    ``state``: ``new`` (nothing trained), ``unfinished`` (resume it), ``finished`` (its last
    metrics row is its final evaluation) or ``damaged`` (neither: never resumed or summarised).
    """

    state: Literal["new", "unfinished", "finished", "damaged"]
    reason: str


def run_status(run_dir: str | Path, *, total_episodes: int, final_problems: dict[str, int]) -> RunStatus:
    """Whether ``run_dir`` holds a finished run, by its checkpoint, ``metrics.csv`` and final evaluation.

    Finished: the checkpoint's progress record reaches ``total_episodes``, the last row of
    ``metrics.csv`` is at the same update and episode count, and that row holds the final
    evaluation (``{split}_problems == final_problems[split]`` for every split). Unfinished: the
    checkpoint is behind the budget and the rows reach it (rows after it are allowed: a resume
    trims them), or the run never saved a checkpoint (it starts over). Damaged: anything else,
    e.g. rows lost after the checkpoint, an empty ``metrics.csv``, a final row without the final
    evaluation, an unreadable file.
    """
    run = Path(run_dir)
    metrics = run / METRICS
    checkpoint = checkpoint_dir(run)
    if not checkpoint.is_dir():
        if metrics.exists():
            return RunStatus("unfinished", "it logged metrics but saved no checkpoint: it starts over")
        return RunStatus("new", "nothing trained yet")
    try:
        progress = read_progress(checkpoint)
    except ValueError as err:
        return RunStatus("damaged", str(err))
    if progress is None:
        return RunStatus("damaged", f"{checkpoint} has no {PROGRESS_FILE} (cut, or from an older version)")
    where = f"the checkpoint is at update {progress.update} ({progress.episodes} episodes)"
    try:
        rows = read_metrics(run)
    except FileNotFoundError:
        return RunStatus("damaged", f"{where} but {metrics} is missing")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return RunStatus("damaged", f"{metrics} is unreadable ({err})")
    if not rows:
        return RunStatus("damaged", f"{where} but {metrics} holds no rows")
    if any("update" not in row or "episodes" not in row for row in rows):
        return RunStatus("damaged", f"{metrics} has a row without its update or episodes")
    for before, after in zip(rows, rows[1:], strict=False):
        if after["update"] <= before["update"] or after["episodes"] < before["episodes"]:
            return RunStatus(
                "damaged",
                f"{metrics} goes back from update {before['update']:g} to {after['update']:g} "
                "(written twice, or by two processes)",
            )
    last = rows[-1]
    if last["update"] < progress.update:
        lost = f"{where} but {metrics} ends at update {last['update']:g}: rows were lost"
        return RunStatus("damaged", lost)
    at_checkpoint = next((row for row in rows if row["update"] == progress.update), None)
    if at_checkpoint is not None and at_checkpoint["episodes"] != progress.episodes:
        return RunStatus(
            "damaged", f"{where} but {metrics} has {at_checkpoint['episodes']:g} episodes at that update"
        )
    if progress.episodes < total_episodes:
        spent = f"{progress.episodes} of {total_episodes} episodes"
        return RunStatus("unfinished", f"checkpoint at update {progress.update}: {spent}")
    if last["update"] != progress.update:
        return RunStatus("damaged", f"{where}, its last, but {metrics} goes on to update {last['update']:g}")
    for split, count in final_problems.items():
        found = last.get(f"{split}_problems")
        if found != count:
            shown = "absent" if found is None else f"{found:g}"
            return RunStatus(
                "damaged",
                f"the last row of {metrics} (update {progress.update}) is not the final evaluation "
                f"({split}_problems {shown}, not {count})",
            )
    return RunStatus("finished", f"finished at update {progress.update} ({progress.episodes} episodes)")

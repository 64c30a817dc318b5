"""Run directories: crash-safe checkpoints, the metrics CSV, and the one rule for reusing a directory.

Pre-training and RL fine-tuning write the same layout::

    RUN/
      <config file>        the run's settings (``pretrain_config.json`` or ``config.json``)
      metrics.csv          one row per logged step (:func:`append_row`, :func:`read_metrics`)
      checkpoint/          a ``save_pretrained`` model directory plus ``trainer.pt``
      .lock                held by the process writing the run (:class:`agents.run_identity.RunLock`)

``trainer.pt`` holds tensors, numbers, strings and containers of them only (optimizer and
scheduler state, random generator states, counters, the settings) and is loaded with
``torch.load(weights_only=True)``: a file that holds anything else (a pickled object that
would run code when loaded) is refused with a one-line error, never executed.
"""

from __future__ import annotations

import csv
import pickle
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint"
TRAINER_STATE = "trainer.pt"
METRICS = "metrics.csv"
LOGS = (METRICS, "tb")
"""What a run logs as it goes: cleared when a run starts over, trimmed when it resumes."""
LOCK_FILE = ".lock"
"""The lock file a writing process holds; it does not make a directory "non-empty"."""
FINGERPRINT_FILE = "fingerprint.json"
"""What a run was trained with (:mod:`agents.run_identity`), written before it starts: with the
lock, the only files that do not make a directory "non-empty"."""


# --------------------------------------------------------------------------- atomic directories


@contextmanager
def write_dir(final: Path) -> Iterator[Path]:
    """Context manager: fill the yielded directory; it replaces ``final`` on success.

    The yielded directory is a fresh ``final.tmp``; when the block ends without error the old
    ``final`` is moved aside, the new one renamed into place, and the old one deleted. At every
    instant a complete checkpoint exists at ``final`` or, during the swap, at ``final.old``,
    which :func:`find_dir` falls back to.
    """
    final = Path(final)
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    if tmp.exists():  # left by a crash mid-write: never complete, safe to drop
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def find_dir(final: Path) -> Path:
    """``final``, or ``final.old`` if a crash interrupted the swap of :func:`write_dir`."""
    final = Path(final)
    old = final.with_name(final.name + ".old")
    return old if not final.exists() and old.exists() else final


# --------------------------------------------------------------------------- checkpoints


def checkpoint_dir(run_dir: str | Path) -> Path:
    """The run's complete checkpoint directory (which may not exist yet)."""
    return find_dir(Path(run_dir) / CHECKPOINT)


def has_checkpoint(run_dir: str | Path) -> bool:
    return (checkpoint_dir(run_dir) / TRAINER_STATE).is_file()


def save_trainer_state(directory: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, and lists/tuples/dicts of them) as ``trainer.pt``."""
    import torch  # here, so that reading run directories (metrics, status) does not load torch

    torch.save(state, Path(directory) / TRAINER_STATE)


def load_trainer_state(run_dir: str | Path) -> dict[str, Any]:
    """The ``trainer.pt`` of the run's checkpoint, loaded without running any code it may hold.

    Raises:
        FileNotFoundError: the run has no checkpoint.
        ValueError: the file holds something other than plain data, or is damaged (one line).
    """
    import torch

    path = checkpoint_dir(run_dir) / TRAINER_STATE
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume in {run_dir}: {path} does not exist")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise ValueError(
            f"{path} holds objects other than tensors and plain data, which could run code when loaded: "
            "refused (a checkpoint written by this package never does; do not resume from this copy)"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} is damaged ({reason}): delete the run directory or start another") from None


# --------------------------------------------------------------------------- metrics CSV


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` to a CSV whose columns may grow (evaluation rows carry more keys)."""
    path = Path(path)
    rows = read_rows(path) if path.exists() else []
    columns = list(dict.fromkeys([*(rows[0].keys() if rows else []), *row]))
    if rows and columns == list(rows[0].keys()):
        with path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=columns).writerow(row)
        return
    write_rows(path, [*rows, row])


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as a CSV file whose columns are every key, in order of appearance."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file as strings."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as floats (empty cells, and those a cut row lacks, dropped).

    An empty or header-only file has no rows (``[]``). Raises ``ValueError`` (one line naming the
    file and line) for a cell that is not a number or a row with more cells than the header.
    """
    path = Path(run_dir) / METRICS
    rows = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                if None in row:  # DictReader files surplus cells under the key None
                    raise ValueError(f"{path}, line {reader.line_num}: more cells than columns")
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
        except (ValueError, csv.Error) as err:
            if str(err).startswith(str(path)):
                raise
            raise ValueError(f"{path}, line {reader.line_num}: not a metrics row ({err})") from None
    return rows


def trim_metrics(run_dir: str | Path, key: str, last: float) -> None:
    """Drop the rows of ``metrics.csv`` logged after the checkpoint (``row[key] > last``).

    A run killed between two checkpoints has logged rows that its resumed run logs again.
    """
    path = Path(run_dir) / METRICS
    if path.exists():
        rows = read_rows(path)
        kept = [row for row in rows if float(row[key]) <= last]
        if len(kept) < len(rows):
            write_rows(path, kept) if kept else path.unlink()


# --------------------------------------------------------------------------- reusing a directory


def check_not_foreign(run_dir: str | Path, marker: str) -> None:
    """Refuse (``FileExistsError``) a non-empty directory that holds no run of this package: no
    ``marker`` file, no checkpoint, no fingerprint (a model directory included). Nothing is written
    into such a directory, not even a lock."""
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise FileExistsError(f"{run} is a file, not a run directory")
    if not run.is_dir() or (run / marker).is_file() or (run / FINGERPRINT_FILE).is_file():
        return
    if has_checkpoint(run) or (run / CHECKPOINT).is_dir():
        return
    if any(path.name != LOCK_FILE for path in run.iterdir()):
        raise FileExistsError(
            f"{run} is not empty and holds no run of this package (no {marker}): "
            "choose an empty or new directory"
        )


def open_run(run_dir: str | Path, resume: bool | None, marker: str) -> bool:
    """Apply the one rule for writing a run into ``run_dir``; returns whether to resume it.

    - ``resume=True``: the directory must hold a checkpoint (else ``FileNotFoundError``).
    - ``resume=False``: a directory holding a checkpoint is refused (``FileExistsError``):
      continue it with ``--resume`` or choose another directory.
    - ``resume=None`` (``compare``'s jobs): resume when there is a checkpoint, else start.

    A run that starts writes into an empty or missing directory, or one of its own runs that
    never reached a checkpoint (recognised by ``marker``, a file only that kind of run writes:
    its logs are cleared, so they are not appended twice); any other non-empty directory (a
    model directory included; a :data:`LOCK_FILE` alone does not count) is refused, so that a
    run never overwrites or merges into files it did not write.
    """
    run = Path(run_dir)
    if has_checkpoint(run):
        if resume is False:
            raise FileExistsError(
                f"{run} already holds a run: pass --resume to continue it, or choose another directory"
            )
        return True
    if resume:
        raise FileNotFoundError(f"nothing to resume in {run}: it has no {CHECKPOINT}/{TRAINER_STATE}")
    if run.exists() and not run.is_dir():
        raise FileExistsError(f"{run} is a file, not a run directory")
    check_not_foreign(run, marker)
    if run.is_dir() and any(path.name not in (LOCK_FILE, FINGERPRINT_FILE) for path in run.iterdir()):
        for name in LOGS:
            target = run / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    try:  # an --out that cannot be a directory fails here, before any model loads
        run.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the run directory {run}: {err.strerror or err}") from None
    return False


# --------------------------------------------------------------------------- Ctrl-C


class InterruptAtBoundary:
    """Context manager that holds a Ctrl-C (SIGINT) until the training loop reaches a boundary.

    A checkpoint must hold the state between two updates (or steps): one saved mid-rollout has
    an advanced random generator, one saved between two minibatches a half-applied update, and
    neither resumes exactly. Inside the block the first Ctrl-C only sets :attr:`requested` (the
    loop then finishes its update, saves and raises ``KeyboardInterrupt``); a second one stops at
    once, keeping the last checkpoint. Outside the main thread (where Python delivers no signals)
    it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> InterruptAtBoundary:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this update, then saving (Ctrl-C again stops now)", file=sys.stderr)

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

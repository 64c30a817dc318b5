"""One writer per run directory: an exclusive ``fcntl.flock`` on ``RUN/.lock``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agents.rundir import LOCK_FILE


class RunInUse(OSError):
    """Another process (or another :class:`RunLock` of this one) is writing the run directory."""


class RunLock:
    """Context manager: an exclusive hold on a run directory while this process writes it.

    Entering creates the directory if needed, takes a non-blocking ``fcntl.flock`` on its
    ``.lock`` file and writes this process's pid into it; a directory already held (by another
    process, or by another ``RunLock`` in this one) raises :class:`RunInUse` naming the holder's
    pid. The hold ends on exit, and with the process however it dies (the kernel drops the
    lock with the file), so a killed run never leaves a stale lock. The ``.lock`` file stays:
    deleting it would let two processes lock two different files of one name.

    A child forked while the lock is held shares it until the child exits too (``flock``
    semantics); processes started with ``subprocess``/``spawn`` do not inherit it.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if self._fd is not None:
            raise RunInUse(f"{self.run_dir} is already held by this RunLock")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"cannot create the run directory {self.run_dir}: {err.strerror or err}") from None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise OSError(f"cannot lock the run directory {self.run_dir}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            who = "this process" if holder == str(os.getpid()) else "another process"
            raise RunInUse(
                f"{self.run_dir} is being written by {who} (pid {holder}): "
                "wait for it to finish, or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no pid of a finished writer left to mislead a reader
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

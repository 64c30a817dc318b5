"""Run identity: what a run directory was trained with, who is writing it, and whether it is done.

Before a runner trains into a run directory, resumes it or summarises it, it asks three things:

- *Is it this run?* :func:`fingerprint` records everything that decides a run's result (the
  resolved settings, algorithm, method, backend, a hash of the reference's weights, a hash of
  the evaluation set, the package version) and :func:`write_fingerprint` keeps it in
  ``fingerprint.json``. :func:`check_fingerprint` refuses a run directory trained otherwise with
  one line naming what differs (:func:`fingerprint_differences`).
- *Is another process writing it?* :class:`RunLock` holds an exclusive lock on ``.lock`` while a
  process writes the run; a second one stops at once with :class:`RunInUse`.
- *Is it finished?* :func:`run_status` believes ``metrics.csv`` only where the checkpoint's
  progress record (``checkpoint/progress.json``, :func:`write_progress`) and the final
  evaluation agree with it: a run is ``new``, ``unfinished`` (resume it), ``finished``
  (summarise it) or ``damaged`` (neither; the reason says why).

The files it adds to a run directory (:mod:`agents.rundir`)::

    RUN/
      fingerprint.json     what the run was trained with
      .lock                held by the process writing the run (its pid inside)
      checkpoint/progress.json   {"update": U, "episodes": E} of the checkpoint it sits in

- :mod:`~agents.run_identity.fingerprint`: fingerprints, and the check before a reuse;
- :mod:`~agents.run_identity.lock`: one writer per run directory;
- :mod:`~agents.run_identity.status`: progress records and a run's status.

Only the standard library and :mod:`agents.rundir` are imported: reading run directories
loads no torch.
"""

from agents.run_identity.fingerprint import (
    FINGERPRINT_FILE,
    RETRAIN_HINT,
    RunMismatch,
    check_fingerprint,
    eval_set_hash,
    fingerprint,
    fingerprint_differences,
    package_version,
    read_fingerprint,
    reference_hash,
    write_fingerprint,
)
from agents.run_identity.lock import RunInUse, RunLock
from agents.run_identity.status import (
    PROGRESS_FILE,
    Progress,
    RunStatus,
    read_progress,
    run_status,
    write_progress,
)

__all__ = [
    "FINGERPRINT_FILE",
    "PROGRESS_FILE",
    "RETRAIN_HINT",
    "Progress",
    "RunInUse",
    "RunLock",
    "RunMismatch",
    "RunStatus",
    "check_fingerprint",
    "eval_set_hash",
    "fingerprint",
    "fingerprint_differences",
    "package_version",
    "read_fingerprint",
    "read_progress",
    "reference_hash",
    "run_status",
    "write_fingerprint",
    "write_progress",
]

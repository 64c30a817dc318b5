"""Fingerprints: everything that decides a run's result, recorded in ``RUN/fingerprint.json``.

A run directory is reused (resumed, or summarised) only for the run it holds: the same resolved
settings, algorithm, method and backend, the same reference weights (hashed, not its path),
the same evaluation set (hashed) and the same package version. :func:`check_fingerprint`
refuses any other with one line naming what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import os
from pathlib import Path
from typing import Any

from agents.rundir import FINGERPRINT_FILE, METRICS, checkpoint_dir

FINGERPRINT_FORMAT = 1
"""Incremented whenever the fingerprint's layout changes, so an old one reads as different, never equal."""
REFERENCE_FILES = ("config.json", "arith_gym.json")
"""Hashed with a reference's ``*.safetensors`` weights when present: its architecture and task."""
RETRAIN_HINT = "use another --out, or retrain it (compare --retrain)"
LABELS = {
    "format": "fingerprint format",
    "algo": "algorithm",
    "method": "method",
    "backend": "backend",
    "reference_sha256": "reference weights",
    "eval_set_sha256": "evaluation set",
    "version": "package version",
}
"""How :func:`fingerprint_differences` names each top-level key (``settings`` are named one by one)."""
ABSENT = object()


class RunMismatch(ValueError):
    """A run directory holds a run trained with other settings, reference, evaluation set or version."""


def package_version() -> str:
    """The installed ``arith-gym`` version (``"unknown"`` when run from a checkout never installed)."""
    try:
        return importlib.metadata.version("arith-gym")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON would read it back (tuples become lists, paths strings), so a fingerprint
    compares equal to itself after a round trip through ``fingerprint.json``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{where} has a key that is not a string: it cannot go in a fingerprint")
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    raise TypeError(f"{where} is a {type(value).__name__}: a fingerprint holds JSON values only")


def _canonical(value: Any) -> bytes:
    """One byte string per JSON value, whatever its key order or spacing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def reference_hash(reference_dir: str | Path) -> str:
    """sha256 of a reference model directory's weights: every ``*.safetensors`` file in name order,
    then ``config.json`` and ``arith_gym.json`` if present (each file's name and size, then bytes).

    The directory's path is not in it: a copied reference hashes the same, and another model
    saved under the same path does not.

    Raises:
        FileNotFoundError: ``reference_dir`` is not a directory.
        ValueError: it holds no ``*.safetensors`` file.
    """
    directory = Path(reference_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"reference model directory {directory} does not exist")
    weights = sorted((p for p in directory.glob("*.safetensors") if p.is_file()), key=lambda p: p.name)
    if not weights:
        raise ValueError(f"{directory} holds no *.safetensors weights: not a reference model directory")
    described = [directory / name for name in REFERENCE_FILES if (directory / name).is_file()]
    digest = hashlib.sha256()
    for path in [*weights, *described]:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def eval_set_hash(eval_set: dict | bytes | str) -> str:
    """sha256 of an evaluation set's canonical JSON (sorted keys, no spaces; lists keep their order).

    ``eval_set``: the set as a dict (tuples allowed), or its JSON text (``EvalSet.to_json()``, or
    the bytes of ``eval_set.json``): both forms of one set hash the same.
    """
    if isinstance(eval_set, (bytes, str)):
        try:
            eval_set = json.loads(eval_set)
        except ValueError as err:
            raise ValueError(f"the evaluation set is not JSON ({err})") from None
    return hashlib.sha256(_canonical(_plain(eval_set, "the evaluation set"))).hexdigest()


def fingerprint(
    settings: dict | Any,
    *,
    algo: str,
    method: str | None,
    backend: str,
    reference_dir: str | Path,
    eval_set: dict | bytes | str,
    version: str | None = None,
) -> dict:
    """Everything that decides a run's result, as a JSON-able dict (equal runs: equal dicts).

    Args:
        settings: the resolved settings, a dict or a dataclass instance (e.g. an ``RLConfig``,
            read with ``dataclasses.asdict``); JSON values only (tuples and paths are stored as
            lists and strings).
        algo: the algorithm (``ppo``, ``sb3-ppo``, ``trl-grpo``, ...).
        method: the KL method (None: the algorithm's own).
        backend: the registered backend that trains it.
        reference_dir: the reference model directory: its weights are hashed
            (:func:`reference_hash`), its path is not recorded.
        eval_set: the held-out evaluation set (:func:`eval_set_hash`).
        version: the package version (default: the installed one, :func:`package_version`).
    """
    return {
        "format": FINGERPRINT_FORMAT,
        "settings": _plain(_as_dict(settings), "settings"),
        "algo": algo,
        "method": method,
        "backend": backend,
        "reference_sha256": reference_hash(reference_dir),
        "eval_set_sha256": eval_set_hash(eval_set),
        "version": package_version() if version is None else version,
    }


def _as_dict(settings: Any) -> dict:
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict or a dataclass instance, not a {type(settings).__name__}")
    return settings


def write_fingerprint(run_dir: str | Path, fp: dict) -> Path:
    """Write ``fp`` as ``run_dir/fingerprint.json`` atomically (a crash leaves the old file or the new)."""
    path = Path(run_dir) / FINGERPRINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(fp, "the fingerprint"), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_fingerprint(run_dir: str | Path) -> dict | None:
    """The run's ``fingerprint.json`` (None when it has none).

    Raises:
        ValueError: the file is not a JSON object (one line naming it).
    """
    path = Path(run_dir) / FINGERPRINT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is unreadable (not a JSON object)")
    return data


def _shown(value: Any, short: bool = False) -> str:
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, str):  # quoted only if it would break the one line
        return value[:8] if short else value if value.isprintable() else json.dumps(value)
    return json.dumps(value)


def fingerprint_differences(saved: dict | None, wanted: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """What differs between a run's ``saved`` fingerprint and the ``wanted`` one, one phrase each.

    E.g. ``settings.lr 0.0001 -> 0.5``, ``reference weights 3f2a9c1b -> 77aa01de`` (hash
    prefixes), ``evaluation set ...``, ``package version 0.2.0 -> 0.3.0``; ``saved=None`` gives
    ``["no fingerprint (a run from an older version)"]``. ``ignore``: top-level keys, or
    ``settings.NAME``, left out of the comparison. In the order of ``wanted`` (then what only
    ``saved`` has); an empty list: the same run.
    """
    if saved is None:
        return ["no fingerprint (a run from an older version)"]
    saved, wanted = _plain(saved, "the saved fingerprint"), _plain(wanted, "the fingerprint")
    found = []
    for key in dict.fromkeys([*LABELS, *wanted, *saved]):
        if key in ignore:
            continue
        old, new = saved.get(key, ABSENT), wanted.get(key, ABSENT)
        if key == "settings" and isinstance(old, dict) and isinstance(new, dict):
            for name in dict.fromkeys([*new, *old]):
                before, after = old.get(name, ABSENT), new.get(name, ABSENT)
                if f"settings.{name}" not in ignore and _differ(before, after):
                    found.append(f"settings.{name} {_shown(before)} -> {_shown(after)}")
        elif _differ(old, new):
            short = key.endswith("_sha256")
            found.append(f"{LABELS.get(key, key)} {_shown(old, short)} -> {_shown(new, short)}")
    return found


def _differ(old: Any, new: Any) -> bool:
    """Whether two JSON values differ: numbers by value (``5 == 5.0``, NaN equals NaN), but a
    bool is not a number, nor a list a dict."""
    if isinstance(old, bool) or isinstance(new, bool) or old is ABSENT or new is ABSENT:
        return old is not new
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers):
        return not (old == new or (math.isnan(old) and math.isnan(new)))
    if isinstance(old, list) and isinstance(new, list):
        return len(old) != len(new) or any(_differ(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() != new.keys() or any(_differ(old[k], new[k]) for k in old)
    return type(old) is not type(new) or old != new


def check_fingerprint(
    run_dir: str | Path, wanted: dict, *, hint: str = RETRAIN_HINT, ignore: tuple[str, ...] = ()
) -> None:
    """Refuse to reuse ``run_dir`` unless its run was trained as ``wanted`` describes.

    A directory with no fingerprint passes only while it holds no run yet (no checkpoint, no
    ``metrics.csv``): a run written before fingerprints existed is refused like a different one.

    Raises:
        RunMismatch: one line, ``RUN was trained with other settings: A -> B, ...; HINT``.
    """
    run = Path(run_dir)
    try:
        saved = read_fingerprint(run)
    except ValueError as err:
        raise RunMismatch(f"{run} cannot be reused: {err}; {hint}") from None
    if saved is None and not checkpoint_dir(run).exists() and not (run / METRICS).exists():
        return
    differences = fingerprint_differences(saved, wanted, ignore)
    if differences:
        raise RunMismatch(f"{run} was trained with other settings: {', '.join(differences)}; {hint}")

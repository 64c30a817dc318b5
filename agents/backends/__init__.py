"""The backend contract: what trains a run, behind one protocol and one registry.

A :class:`Backend` trains a job (an algorithm, its resolved settings, a reference model) into a
run directory whose record is :mod:`agents.rl.bookkeeping`'s, whatever the backend, and reports
each update to a callback. ``agents`` (the package's own trainer, every registered algorithm),
``sb3`` (Stable-Baselines3's PPO and A2C) and ``trl`` (TRL's GRPOTrainer) are registered here
exactly as a plug-in registers its own::

    from agents.backends import register_backend

    register_backend("mine", "my_package.backend:MyBackend", algorithms=("my-algo",))

The entry is a ``"module:attribute"`` string (imported when a run needs it, so an optional
extra is imported only by its own runs) or the backend object itself. ``experiments`` knows the
backends only through :func:`backend_for`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from agents.registry import Registry
from agents.rl.config import RLConfig

UpdateCallback = Callable[[dict[str, float]], None]


@runtime_checkable
class Backend(Protocol):
    """What a backend provides."""

    resumable: bool
    """True: an unfinished run continues from its checkpoint; False: it starts again."""

    def algorithms(self) -> tuple[str, ...]:
        """The ``--algo`` / ``compare --algos`` names this backend trains."""
        ...

    def job_config(self, base: RLConfig, algo: str, method: str) -> RLConfig:
        """The settings of a comparison's run of ``algo`` with ``method`` on top of ``base`` (the
        preset); the user's ``--set`` is applied after this."""
        ...

    def check(self, config: RLConfig, algo: str) -> None:
        """Refuse, with one line, settings this backend cannot run (before any run starts)."""
        ...

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
        """Train ``reference`` with ``config`` into ``run_dir`` to the end. ``resume``: None (a
        comparison's jobs) continues an unfinished run (or starts it again, as :attr:`resumable`
        says) and leaves a finished one as it is; True must continue one; False must start one
        (a directory that holds a run is refused). Returns ``run_dir``."""
        ...


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend: where it lives, and the algorithms it trains (None: it says itself)."""

    target: str | Backend
    algorithms: tuple[str, ...] | None = None

    def load(self) -> Backend:
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


BACKENDS: Registry[BackendEntry] = Registry("backend")


def register_backend(name: str, target: str | Backend, algorithms: tuple[str, ...] | None = None) -> None:
    """Register backend ``name``: a ``"module:attribute"`` string or the object, and the algorithms
    it trains (give them when the target is a string, so that finding the backend of an algorithm
    imports nothing)."""
    BACKENDS.add(name, BackendEntry(target, None if algorithms is None else tuple(algorithms)))


def _algorithms_of(entry: BackendEntry) -> tuple[str, ...]:
    return entry.algorithms if entry.algorithms is not None else entry.load().algorithms()


def algorithm_names() -> tuple[str, ...]:
    """Every algorithm some backend trains (plug-ins' included)."""
    return tuple(algo for name in BACKENDS for algo in _algorithms_of(BACKENDS[name]))


def backend_name(algo: str) -> str:
    """The name of the backend that trains ``algo``; an unknown one is a one-line ``ValueError``."""
    for name in BACKENDS:
        if algo in _algorithms_of(BACKENDS[name]):
            return name
    raise ValueError(f"unknown algorithm {algo!r}; registered: {', '.join(algorithm_names())}")


def backend_for(algo: str) -> Backend:
    """The backend that trains ``algo``."""
    return BACKENDS[backend_name(algo)].load()


register_backend("agents", "agents.backends.local:BACKEND")
register_backend("sb3", "agents.backends.sb3:BACKEND", algorithms=("sb3-ppo", "sb3-a2c"))
register_backend("trl", "agents.backends.trl:BACKEND", algorithms=("trl-grpo",))

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendEntry",
    "algorithm_names",
    "backend_for",
    "backend_name",
    "register_backend",
]

"""The KL weighting contract: how much of the KL to the reference each played token pays.

Every backend (``agents``' own trainer, Stable-Baselines3, TRL) asks the same registered
weighting for the same thing, so a weighting written once runs everywhere:

1. once per run, before any update, :meth:`KLWeighting.prepare` may calibrate itself on the
   frozen reference and training problems (``critical_auto``'s β lives there) and returns the
   run's settings with what it chose;
2. on every batch, :meth:`KLWeighting.weights` maps a read-only :class:`TokenBatch` to weights
   ``[B, T]`` (anything that broadcasts to it), masked afterwards.

A weighting declares in ``needs`` which :data:`BATCH_FIELDS` it reads; each backend declares
which it can give (``provides``), and a run whose weighting needs more refuses at start with one
line naming both (:func:`check_weighting`). Register your own with :func:`register_kl_weighting`
(a function) or ``KL_WEIGHTINGS.add(name, obj)`` (any object with the protocol's members)::

    @register_kl_weighting("entropy_lift", needs=("entropy",))
    def entropy_lift(batch, config):
        return (~top_fraction(batch.entropy, batch.mask, 0.2)).float()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from agents.kl import NonFiniteError
from agents.registry import Registry
from agents.rl.config import RLConfig
from agents.rl.methods import register_method
from arith_gym.codec import Codec
from arith_gym.task import ProblemKey, task_problems

if TYPE_CHECKING:
    from transformers import PreTrainedModel

BATCH_FIELDS: dict[str, str] = {
    "mask": "bool [B, T]: the tokens played (always given)",
    "actions": "long [B, T]: the token ids played (always given)",
    "logp": "[B, T]: log pi(a_t) of the sampling policy, at its temperature",
    "entropy": "[B, T]: the sampling policy's entropy at each token",
    "ref_logp": "[B, T]: log pi_ref(a_t) of the frozen reference, at the policy's temperature",
    "certainty": "[B, T]: the reference's certainty J (agents.kl.certainty) at certainty_temperature",
    "rewards": "[B, T]: the env's reward at each token (the outcome at the last one)",
    "groups": "long [B]: equal ids played the same problem (groups of G episodes)",
    "values": "[B, T]: the critic's value estimate at each token",
    "critical": "bool [B, T]: the env's structural critical-token labels",
    "advantages": "[B, T]: the advantages before any KL (only where the KL is a loss term)",
}
"""What a :class:`TokenBatch` may hold, by name; a weighting's ``needs`` and a backend's
``provides`` are sets of these names."""
ALWAYS_GIVEN = frozenset({"mask", "actions"})


class TokenBatch:
    """A read-only batch of B played episodes of at most T tokens, as a KL weighting sees it.

    Holds the :data:`BATCH_FIELDS` its backend computed for the run's weighting (a backend
    computes only what the weighting ``needs``). Reading a field the batch does not hold is a
    one-line ``AttributeError`` that says which backend built it and what to declare; setting an
    attribute is refused, and :func:`compute_weights` refuses a weighting that edits a tensor in
    place, so no weighting can change what the loss (or another weighting) reads.
    """

    __slots__ = ("_fields", "_backend")

    def __init__(self, backend: str, **fields: torch.Tensor) -> None:
        unknown = sorted(set(fields) - set(BATCH_FIELDS))
        if unknown:
            raise ValueError(f"unknown TokenBatch fields {unknown}; known: {', '.join(BATCH_FIELDS)}")
        missing = sorted(ALWAYS_GIVEN - set(fields))
        if missing:
            raise ValueError(f"a TokenBatch needs {missing}")
        object.__setattr__(self, "_fields", MappingProxyType(dict(fields)))
        object.__setattr__(self, "_backend", backend)

    def __getattr__(self, name: str) -> torch.Tensor:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        if name in BATCH_FIELDS:
            raise AttributeError(
                f"this batch from the {self._backend} backend holds no {name!r}: declare it in the "
                f"weighting's needs (register_kl_weighting(..., needs=({name!r},))) so that the backend "
                "computes it, or refuses at start if it cannot"
            )
        raise AttributeError(f"TokenBatch has no field {name!r}; fields: {', '.join(BATCH_FIELDS)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a TokenBatch is read-only (tried to set {name!r})")

    @property
    def backend(self) -> str:
        """The backend that built this batch (``agents``, ``SB3``, ``TRL``, ...)."""
        return self._backend

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the fields this batch holds."""
        return tuple(self._fields)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self._fields.items())
        return f"TokenBatch({self._backend}: {shapes})"


@dataclass(frozen=True)
class TrainingProblems:
    """The training problems a weighting may play once to calibrate itself (never held-out ones)."""

    comfort_digits: int
    split: str
    task: str = "Addition"
    codec: Codec | None = None
    """The reference's tokenizer (:mod:`arith_gym.codec`; None: the character ids)."""

    def draw(self, count: int, seed: int = 0) -> list[ProblemKey]:
        """``count`` training problems of the task's split, drawn with ``seed``."""
        return task_problems(self.task, self.split, self.comfort_digits, count, seed, problem_set="train")


@runtime_checkable
class KLWeighting(Protocol):
    """What a KL weighting provides (see the module docstring)."""

    needs: frozenset[str]
    """The :data:`BATCH_FIELDS` :meth:`weights` reads (``mask`` and ``actions`` are always given)."""
    zero: bool
    """True when every weight is 0 (``none``): backends then skip the KL and the reference."""

    def prepare(self, reference: PreTrainedModel, config: RLConfig, problems: TrainingProblems) -> RLConfig:
        """Once per run, before any update: ``config`` with whatever the weighting calibrated."""
        ...

    def weights(self, batch: TokenBatch, config: RLConfig) -> torch.Tensor:
        """The KL weight of each token of ``batch``: ``[B, T]``, or anything that broadcasts to it."""
        ...


KL_WEIGHTINGS: Registry[KLWeighting] = Registry("KL weighting")
"""Every KL weighting by name, built-ins (:mod:`agents.rl.weightings`) and plug-ins alike."""


def _no_calibration(reference: PreTrainedModel, config: RLConfig, problems: TrainingProblems) -> RLConfig:
    return config


@dataclass(frozen=True)
class FunctionWeighting:
    """A :class:`KLWeighting` made of a function ``fn(batch, config) -> weights`` (and an optional
    ``calibrate(reference, config, problems) -> config``); :func:`register_kl_weighting` builds it."""

    fn: Callable[[TokenBatch, RLConfig], torch.Tensor]
    needs: frozenset[str] = frozenset()
    calibrate: Callable[[PreTrainedModel, RLConfig, TrainingProblems], RLConfig] = _no_calibration
    zero: bool = False

    def prepare(self, reference: PreTrainedModel, config: RLConfig, problems: TrainingProblems) -> RLConfig:
        return self.calibrate(reference, config, problems)

    def weights(self, batch: TokenBatch, config: RLConfig) -> torch.Tensor:
        return self.fn(batch, config)


def register_kl_weighting(
    name: str,
    *,
    needs: Iterable[str] = (),
    prepare: Callable[[PreTrainedModel, RLConfig, TrainingProblems], RLConfig] | None = None,
    method: bool = True,
    zero: bool = False,
) -> Callable:
    """Decorator: register ``fn(batch: TokenBatch, config) -> weights`` as KL weighting ``name``.

    Args:
        needs: the :data:`BATCH_FIELDS` ``fn`` reads (``mask`` and ``actions`` always come).
        prepare: an optional one-time calibration (:meth:`KLWeighting.prepare`).
        method: also register the method ``name`` (``--method NAME``, ``compare --methods NAME``)
            that sets only ``kl_weighting``.
        zero: the weights are 0 everywhere (the KL is then not computed at all).

    Raises:
        ValueError: a name already taken, or a need that is not a batch field.
    """
    needed = frozenset(needs)
    unknown = sorted(needed - set(BATCH_FIELDS))
    if unknown:
        raise ValueError(
            f"KL weighting {name!r} needs unknown batch fields {unknown}; known: {list(BATCH_FIELDS)}"
        )

    def register(fn: Callable[[TokenBatch, RLConfig], torch.Tensor]) -> Callable:
        KL_WEIGHTINGS.add(
            name, FunctionWeighting(fn, needed - ALWAYS_GIVEN, prepare or _no_calibration, zero)
        )
        if method:
            register_method(name, kl_weighting=name)
        return fn

    return register


def check_weighting(name: str, provides: Iterable[str], backend: str) -> KLWeighting:
    """KL weighting ``name``, after checking that ``backend`` (its description, e.g. "the SB3
    backend"), which ``provides`` those batch fields, can give it everything it ``needs``.

    Raises:
        ValueError: one line naming the weighting, the fields it lacks and the backend.
    """
    weighting = KL_WEIGHTINGS[name]
    missing = sorted(set(weighting.needs) - set(provides) - ALWAYS_GIVEN)
    if missing:
        what = "; ".join(f"{field}: {BATCH_FIELDS.get(field, '?')}" for field in missing)
        raise ValueError(f"KL weighting {name!r} needs what the {backend} cannot give ({what})")
    return weighting


def compute_weights(name: str, batch: TokenBatch, config: RLConfig) -> torch.Tensor:
    """The weights ``[B, T]`` of KL weighting ``name`` on ``batch`` (detached, 0 off its mask).

    Raises:
        ValueError: the weighting edited a batch tensor in place, or returned weights that do not
            broadcast to ``[B, T]``, or (:class:`~agents.kl.NonFiniteError`) NaN or infinite ones.
    """
    mask = batch.mask
    versions = {field: getattr(batch, field)._version for field in batch.fields}
    weights = torch.as_tensor(KL_WEIGHTINGS[name].weights(batch, config))
    edited = [field for field, version in versions.items() if getattr(batch, field)._version != version]
    if edited:
        raise ValueError(f"KL weighting {name!r} edited the batch's {edited} in place: weightings must not")
    try:
        weights = weights.detach().to(device=mask.device).expand(mask.shape)
    except RuntimeError:
        raise ValueError(
            f"KL weighting {name!r} returned weights of shape {tuple(weights.shape)}, "
            f"which do not broadcast to the batch's {tuple(mask.shape)}"
        ) from None
    dtype = weights.dtype if weights.is_floating_point() else torch.float32
    weights = torch.where(mask, weights.to(dtype), torch.zeros((), dtype=dtype, device=mask.device))
    if not torch.isfinite(weights).all():
        raise NonFiniteError(f"KL weighting {name!r} returned non-finite weights (NaN or inf)")
    return weights

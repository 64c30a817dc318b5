"""Per-token KL weightings: how much of the KL to the reference each played token pays.

A weighting maps a scored :class:`~agents.rl.rollout.Rollout` and the run's
:class:`~agents.rl.config.RLConfig` to weights ``[B, T]`` (masked afterwards). The built-in
ones are the paper's: ``none`` (0), ``uniform`` (1, the standard KL), ``critical`` (J^beta, J
the reference's certainty, see :mod:`agents.kl`) and ``oracle_critical`` (0 exactly on the
tokens the env labels critical, 1 elsewhere: it knows the template).

Register your own with :func:`register_kl_weighting`; it also becomes a method of the same
name (``--method NAME``, ``compare --methods NAME``) that sets only ``kl_weighting``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agents.kl import kl_weights
from agents.rl.config import RLConfig
from agents.rl.methods import register_method
from agents.rl.registry import Registry
from agents.rl.rollout import Rollout

KLWeighting = Callable[[Rollout, RLConfig], torch.Tensor]
KL_WEIGHTING_FUNCTIONS: Registry[KLWeighting] = Registry("KL weighting")


def register_kl_weighting(name: str, *, method: bool = True) -> Callable:
    """Decorator: register ``fn(rollout, config) -> weights [B, T]`` as KL weighting ``name``
    (and, with ``method``, the method ``name`` that selects it)."""

    def register(fn: KLWeighting) -> KLWeighting:
        KL_WEIGHTING_FUNCTIONS.add(name, fn)
        if method:
            register_method(name, kl_weighting=name)
        return fn

    return register


def token_kl_weights(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """The weights ``[B, T]`` of ``config.kl_weighting`` on ``rollout``, 0 off its mask."""
    weights = KL_WEIGHTING_FUNCTIONS[config.kl_weighting](rollout, config)
    return weights.to(rollout.logp.dtype).expand_as(rollout.logp) * rollout.mask


def _certainty_weighting(kind: str) -> KLWeighting:
    def weighting(rollout: Rollout, config: RLConfig) -> torch.Tensor:
        return kl_weights(kind, rollout.certainty, config.beta, config.weight_floor)

    weighting.__doc__ = f"``agents.kl.kl_weights({kind!r}, J, beta, floor)``."
    return weighting


for _name in ("none", "uniform", "critical"):
    # Their methods are in agents.rl.methods (``critical`` also fixes the certainty kind).
    register_kl_weighting(_name, method=False)(_certainty_weighting(_name))


@register_kl_weighting("oracle_critical", method=False)
def oracle_critical(rollout: Rollout, config: RLConfig) -> torch.Tensor:
    """0 on the tokens the env labels critical, 1 elsewhere (an upper bound: it knows the template)."""
    return (~rollout.critical).float()

"""Named exploration methods: each is a set of ``RLConfig`` settings applied on top of a preset.

``arith-rl train --method NAME`` and ``arith-rl compare --methods A,B`` select them, so every
method runs with the same reference model, budget, seeds and evaluation. The KL-free baselines
from the literature keep the standard (``uniform``) KL to the reference, so that each differs
from ``uniform`` only by its own exploration mechanism.

A ``critical`` method takes a β suffix, e.g. ``critical@beta=1000`` (the paper's appendix sweeps
β from 10 to 10⁴); ``compare --betas`` builds those names.
"""

from __future__ import annotations

from agents.rl.config import RLConfig
from agents.rl.registry import Registry

METHODS: Registry[dict[str, object]] = Registry("method")
"""Method name -> the settings it fixes (:func:`register_method` adds one)."""


def register_method(name: str, **settings: object) -> None:
    """Register method ``name``: the ``RLConfig`` settings it fixes (checked when it is applied)."""
    METHODS.add(name, dict(settings))


_BUILT_IN: dict[str, dict[str, object]] = {
    "none": {"kl_weighting": "none"},
    "uniform": {"kl_weighting": "uniform"},
    "critical": {"kl_weighting": "critical", "certainty_kind": "negentropy"},
    "critical_max_prob": {"kl_weighting": "critical", "certainty_kind": "max_prob"},
    "oracle_critical": {"kl_weighting": "oracle_critical"},
    # Beyond the paper (docs/beyond.md): β calibrated on the reference's own samples, with the
    # share fixed once on the N = 3 reference (where it gives the β sweep's best, about 2000).
    "critical_auto": {"kl_weighting": "critical", "certainty_kind": "negentropy", "beta_share": 0.25},
    # DAPO (arXiv 2503.14476): a wider upper clip lets unlikely tokens grow.
    "clip_higher": {"kl_weighting": "uniform", "clip_coef": 0.2, "clip_coef_high": 0.28},
    # "Beyond the 80/20 rule" (arXiv 2506.01939): gradient on the 20% highest-entropy tokens.
    "entropy_topk": {"kl_weighting": "uniform", "pg_tokens": "entropy_topk", "entropy_top_fraction": 0.2},
    # KL-Cov (arXiv 2505.22617): their k = 0.2% of tokens, coefficient 1.
    "kl_cov": {"kl_weighting": "uniform", "kl_cov_fraction": 0.002, "kl_cov_coef": 1.0},
}
for _name, _settings in _BUILT_IN.items():
    register_method(_name, **_settings)


def method_settings(name: str) -> dict[str, object]:
    """The settings of method ``name`` (``critical@beta=B`` also fixes β).

    Raises:
        ValueError: an unknown method or a malformed β suffix.
    """
    base, _, suffix = name.partition("@")
    if base not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(METHODS)} (critical*@beta=B)")
    settings = dict(METHODS[base])
    if suffix:
        key, _, value = suffix.partition("=")
        if key != "beta" or settings.get("kl_weighting") != "critical" or "beta_share" in settings:
            raise ValueError(f"{name!r}: only critical methods with a set β take a suffix, and only @beta=B")
        try:
            settings["beta"] = float(value)
        except ValueError:
            raise ValueError(f"{name!r}: beta must be a number") from None
    return settings


def apply_method(config: RLConfig, name: str) -> RLConfig:
    """``config`` with method ``name``'s settings."""
    return config.with_overrides(**method_settings(name))


def beta_sweep(methods: list[str], betas: list[float]) -> list[str]:
    """Replace each critical method by one ``@beta=B`` variant per β (others unchanged)."""
    swept = []
    for name in methods:
        sweepable = name in METHODS and "beta_share" not in METHODS[name]  # critical_auto picks its own β
        if betas and sweepable and METHODS[name].get("kl_weighting") == "critical":
            swept.extend(f"{name}@beta={beta:g}" for beta in betas)
        else:
            swept.append(name)
    return swept

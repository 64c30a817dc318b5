"""KL estimators and per-token KL weights for RL fine-tuning against a frozen reference.

The RL objective carries a penalty ``w_t * KL_t`` per generated token ``t``, where ``KL_t``
estimates KL(π(·|s_t) ‖ π_ref(·|s_t)) and ``w_t`` says how much that token's KL counts.
"Prioritized KL" (Vassoyan, Beau & Plaud, 2025, "Ignore the KL Penalty! Boosting
Exploration on Critical Tokens to Enhance RL Fine-Tuning") sets ``w_t`` from the reference
model's certainty ``J_t``: where the reference is unsure (critical tokens) the weight is
small and the policy may explore, where it is sure the usual KL holds.

Three pieces, all plain torch and elementwise over any batch shape:

* :data:`KL_ESTIMATORS` and :func:`kl_estimate` — the registered per-token KL estimators
  (``k1``, ``k2``, ``k3`` from the log-probs of the sampled token, ``full`` from the whole
  log-prob vectors; a plug-in registers its own with :func:`register_kl_estimator`);
* :func:`certainty` — ``J`` in [0, 1] from the reference logits at the reference's own
  temperature;
* :func:`prioritized_weights` — the paper's ``w = J^β`` (with a floor). Which weight each token
  gets is a registered KL weighting (:mod:`agents.rl.weighting`), of which this is one formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from agents.registry import Registry

CERTAINTY_KINDS: tuple[str, ...] = ("negentropy", "max_prob")


MAX_BETA = 1e6
"""The largest β :func:`prioritized_weights` takes: far past any useful value (J^β is then 0 in float32
for every J below 0.9999), and well inside float32 (β = 1e39 overflowed it and gave NaN at J = 1)."""


class NonFiniteError(ValueError):
    """A value that must be finite is NaN or infinite (a weight, a loss term, a gradient norm): the
    computation stops with one line naming it, before anything is stepped or saved."""


def _check_no_nan(name: str, x: Tensor) -> None:
    """A NaN would silently change the objective (a NaN certainty used to switch the KL off)."""
    if torch.isnan(x).any():
        raise NonFiniteError(f"{name} holds NaN")


def _at_least_float32(x: Tensor) -> Tensor:
    """``x`` as a floating tensor of at least float32 precision (float64 stays float64).

    Entropies, logs and large powers lose too much in bf16/fp16, and the reference's
    logits often come out of the model in one of those.
    """
    return x.to(torch.promote_types(x.dtype, torch.float32))


# --------------------------------------------------------------------------- estimators


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k1 = log π(x) − log π_ref(x)`` for ``x ~ π``: unbiased, but negative for some ``x``."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k2 = ½ (log π(x) − log π_ref(x))²`` for ``x ~ π``: the paper's estimator.

    Non-negative, biased; its expectation matches KL to second order when π ≈ π_ref.
    """
    return 0.5 * (logp - ref_logp).square()


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k3 = exp(d) − 1 − d`` with ``d = log π_ref(x) − log π(x)``, for ``x ~ π``.

    Schulman's estimator: unbiased (``E_π[exp(d)] = Σ π_ref = 1``) and non-negative
    (``e^d ≥ 1 + d``).
    """
    d = ref_logp - logp
    # expm1 keeps the small-d case accurate (exp(d) - 1 cancels); the clamp only removes a
    # rounding error of an ulp or so, since e^d - 1 - d >= 0 exactly.
    return (torch.expm1(d) - d).clamp(min=0.0)


def kl_full(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """Exact ``KL(π ‖ π_ref) = Σ_v π(v) (log π(v) − log π_ref(v))`` over the last dim.

    ``log_probs`` and ``ref_log_probs`` are normalised log-prob vectors ``[..., V]``
    (e.g. ``log_softmax(logits / T)``); the result has shape ``[...]``. Tokens with
    ``π(v) = 0`` contribute 0 (even where ``log π_ref(v) = −inf``); a token with
    ``π(v) > 0`` and ``π_ref(v) = 0`` makes the KL ``+inf``, as it truly is.
    """
    if log_probs.shape != ref_log_probs.shape:
        shapes = f"log_probs {tuple(log_probs.shape)} and ref_log_probs {tuple(ref_log_probs.shape)}"
        raise ValueError(f"{shapes} differ in shape")
    probs = log_probs.exp()
    support = probs > 0
    # Mask the log-probs themselves, not just the product: 0 * (-inf) is NaN in the forward
    # pass, and torch.where over a NaN branch still sends NaN gradients back through it.
    zero = log_probs.new_zeros(())
    diff = torch.where(support, log_probs, zero) - torch.where(support, ref_log_probs, zero)
    kl = (probs * diff).sum(dim=-1)
    # KL >= 0 exactly; when π ≈ π_ref the sum can round to a tiny negative number.
    return kl.clamp(min=0.0)


@dataclass(frozen=True)
class KLEstimator:
    """A per-token estimator of KL(π ‖ π_ref).

    ``fn(logp, ref_logp)`` for estimators of the sampled token, or, with ``needs_vectors``,
    ``fn(log_probs, ref_log_probs)`` over whole ``[..., V]`` log-prob vectors.
    """

    fn: Callable[[Tensor, Tensor], Tensor]
    needs_vectors: bool = False


KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator")
"""Every KL estimator by name (built-ins ``k1``, ``k2``, ``k3``, ``full``; plug-ins' too)."""


def register_kl_estimator(name: str, fn: Callable[[Tensor, Tensor], Tensor], needs_vectors: bool = False):
    """Register ``fn`` as KL estimator ``name`` (see :class:`KLEstimator`); returns ``fn``."""
    KL_ESTIMATORS.add(name, KLEstimator(fn, needs_vectors))
    return fn


for _name, _fn in (("k1", kl_k1), ("k2", kl_k2), ("k3", kl_k3)):
    register_kl_estimator(_name, _fn)
register_kl_estimator("full", kl_full, needs_vectors=True)


def kl_estimate(
    name: str,
    logp: Tensor,
    ref_logp: Tensor,
    log_probs: Tensor | None = None,
    ref_log_probs: Tensor | None = None,
) -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref) by estimator ``name`` (one of :data:`KL_ESTIMATORS`).

    Args:
        name: a registered estimator (``"k1"``, ``"k2"``, ``"k3"``, ``"full"``), ``r = logp − ref_logp``:

            * ``k1 = r``
            * ``k2 = ½ r²``
            * ``k3 = exp(−r) − 1 + r``
            * ``full = Σ_v π(v) (log π(v) − log π_ref(v))``
        logp: ``log π(x)`` of the sampled tokens ``x ~ π``, any shape ``[...]``.
        ref_logp: ``log π_ref(x)`` of the same tokens at the policy's temperature, shape ``[...]``.
        log_probs: ``log π(·)`` over the vocabulary, ``[..., V]``; required for ``"full"``.
        ref_log_probs: ``log π_ref(·)`` at the policy's temperature, ``[..., V]``; required
            for ``"full"``.

    Returns:
        The estimate per token, shape ``[...]``. Gradients flow through every input.

    Computed in at least float32 (fp16/bf16 inputs are upcast).

    Raises:
        ValueError: for an unknown ``name``, mismatched shapes, ``"full"`` without both vectors,
            NaN inputs, or ``logp = -inf`` (a sampled token the policy gives probability 0).
    """
    estimator = KL_ESTIMATORS[name]  # an unknown name is a one-line error listing the registered ones
    # No silent broadcasting: [B, T] against [B, T, 1] would give a [B, T, T] "KL".
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} differ in shape")
    # fp16/bf16 log-probs overflow the estimators (k3 at logp -12, ref 0 is inf in fp16).
    logp, ref_logp = _at_least_float32(logp), _at_least_float32(ref_logp)
    _check_no_nan("logp", logp)
    _check_no_nan("ref_logp", ref_logp)
    if torch.isneginf(logp).any():
        raise ValueError("logp holds -inf: a sampled token has probability 0 under the policy")
    if not estimator.needs_vectors:
        return estimator.fn(logp, ref_logp)
    if log_probs is None or ref_log_probs is None:
        raise ValueError(f"the {name!r} KL estimator needs both log_probs and ref_log_probs ([..., V])")
    if log_probs.shape[:-1] != logp.shape:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)} does not match logp {tuple(logp.shape)} "
            "(expected logp.shape + (V,))"
        )
    return estimator.fn(_at_least_float32(log_probs), _at_least_float32(ref_log_probs))


# --------------------------------------------------------------------------- certainty


def certainty(ref_logits: Tensor, temperature: float, kind: str = "negentropy") -> Tensor:
    """Certainty ``J ∈ [0, 1]`` of the reference distribution ``p = softmax(ref_logits / T)``.

    Args:
        ref_logits: reference logits ``[..., V]`` with ``V ≥ 2``; ``−inf`` entries are allowed.
        temperature: the reference's own temperature ``T > 0`` (the paper's code uses 4).
        kind: one of :data:`CERTAINTY_KINDS`:

            * ``"negentropy"``: ``J = 1 − H(p) / log V`` with ``H(p) = −Σ_v p(v) log p(v)``
              (paper, Eq. 2);
            * ``"max_prob"``: ``J = 1 + log(max_v p(v)) / log V`` (the paper's code).

            Both are 0 for the uniform distribution and 1 for a one-hot one.

    Returns:
        ``J`` of shape ``[...]``, float32 (float64 for float64 logits), with no gradient.

    Raises:
        ValueError: for an unknown ``kind``, ``temperature ≤ 0`` or ``V < 2``.
    """
    if kind not in CERTAINTY_KINDS:
        raise ValueError(f"unknown certainty kind {kind!r}; expected one of {CERTAINTY_KINDS}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    vocab = ref_logits.shape[-1] if ref_logits.dim() else 0
    if vocab < 2:
        raise ValueError(
            f"ref_logits needs a last (vocabulary) dim of size >= 2, got shape {tuple(ref_logits.shape)}"
        )
    log_vocab = math.log(vocab)
    # The reference is frozen: J is data for the weights, not something to differentiate.
    log_p = torch.log_softmax(_at_least_float32(ref_logits.detach()) / temperature, dim=-1)
    if kind == "negentropy":
        p = log_p.exp()
        # p log p -> 0 as p -> 0, but exp underflows to 0 while log_p may be -inf
        # (masked logits): take 0 there rather than 0 * (-inf) = NaN.
        p_log_p = torch.where(p > 0, p * log_p, log_p.new_zeros(()))
        j = 1.0 + p_log_p.sum(dim=-1) / log_vocab
    else:
        j = 1.0 + log_p.amax(dim=-1) / log_vocab
    # Mathematically 0 <= J <= 1; rounding can step just outside (e.g. uniform p).
    return j.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- weights


def check_prioritized(beta: float, floor: float) -> None:
    """Raise a one-line ``ValueError`` for a β outside (0, :data:`MAX_BETA`] or a floor outside [0, 1]."""
    if not (math.isfinite(beta) and 0 < beta <= MAX_BETA):
        raise ValueError(f"beta must be a number in (0, {MAX_BETA:g}], got {beta}")
    if not (math.isfinite(floor) and 0.0 <= floor <= 1.0):
        raise ValueError(f"floor must be in [0, 1], got {floor}")


def prioritized_weights(certainty: Tensor, beta: float = 150.0, floor: float = 0.0) -> Tensor:
    """The paper's prioritized KL weights ``w = (1 − b) J^β + b`` with ``b = floor``.

    Args:
        certainty: the reference's certainty ``J ∈ [0, 1]``, any shape (see :func:`certainty`);
            values outside [0, 1] are clamped.
        beta: exponent ``0 < β <=`` :data:`MAX_BETA` (the paper: 150); large values (1e4) are fine.
        floor: ``b ∈ [0, 1]``, the smallest weight any token gets. ``J = 1`` gives exactly 1,
            ``J = 0`` exactly ``b``.

    Returns:
        Detached weights, same shape and device as ``certainty`` (float32, or float64 for
        float64 input).

    Raises:
        ValueError: ``beta`` outside (0, MAX_BETA], ``floor`` outside [0, 1], or a NaN certainty.
    """
    check_prioritized(beta, floor)
    _check_no_nan("certainty", certainty)
    # The weights come from the frozen reference; gradients must not flow through them.
    j = _at_least_float32(certainty.detach()).clamp(0.0, 1.0)
    # J^β as exp(β log J): pow with β = 1e4 is fine too, but this form makes the edge
    # cases explicit. log(1) = 0 gives exactly 1; tiny J underflows to 0, never NaN/inf;
    # J = 0 is set to 0 directly (log of the clamped tiny value would give a positive
    # J^β for small β).
    tiny = torch.finfo(j.dtype).tiny
    j_pow = torch.where(j > 0, torch.exp(beta * torch.log(j.clamp(min=tiny))), torch.zeros_like(j))
    # lerp(b, 1, t) = b + t (1 − b), evaluated so that t = 0 gives b and t = 1 gives 1 exactly.
    return torch.lerp(torch.full_like(j, floor), torch.ones_like(j), j_pow)

"""KL estimators, reference certainty and the prioritized weights J^beta (agents/kl.py)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.kl import (
    CERTAINTY_KINDS,
    KL_ESTIMATORS,
    certainty,
    kl_estimate,
    prioritized_weights,
    register_kl_estimator,
)
from arith_gym.tokenizer import VOCAB_SIZE

F64 = torch.float64

# Two explicit categorical distributions with full support, so every estimator is finite.
PI = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=F64)
PI_REF = torch.tensor([0.25, 0.25, 0.4, 0.1], dtype=F64)
# Σ π log(π/π_ref); the last token (0.1 vs 0.1) contributes 0.
KL_CLOSED_FORM = 0.5 * math.log(2.0) + 0.2 * math.log(0.8) + 0.2 * math.log(0.5)

logit_lists = st.integers(min_value=2, max_value=VOCAB_SIZE).flatmap(
    lambda v: st.tuples(
        st.lists(st.floats(-1e4, 1e4), min_size=v, max_size=v),
        st.lists(st.floats(-1e4, 1e4), min_size=v, max_size=v),
    )
)
# Mixes moderate logits with extreme ones, so both smooth and near-one-hot distributions occur.
extreme_floats = st.one_of(st.floats(-30, 30), st.sampled_from([-1e4, 1e4, 0.0]), st.floats(-1e4, 1e4))


def _estimates_on_support(name: str, pi: torch.Tensor, pi_ref: torch.Tensor) -> torch.Tensor:
    """The estimator's value for every token x of the vocabulary, as if x were sampled."""
    logp, ref_logp = pi.log(), pi_ref.log()
    return kl_estimate(name, logp, ref_logp)


# --------------------------------------------------------------------------- estimators


def test_closed_form_sanity() -> None:
    expected = float((PI * (PI.log() - PI_REF.log())).sum())
    assert expected == pytest.approx(KL_CLOSED_FORM, rel=1e-12)


@pytest.mark.parametrize("name", ["k1", "k3"])
def test_unbiased_estimators_have_expectation_kl(name: str) -> None:
    # E_{x~π}[k(x)] computed exactly: sum over the support weighted by π.
    expectation = (PI * _estimates_on_support(name, PI, PI_REF)).sum()
    assert float(expectation) == pytest.approx(KL_CLOSED_FORM, rel=1e-12)


def test_full_equals_closed_form() -> None:
    logp = PI.log()
    kl = kl_estimate("full", logp[0], PI_REF.log()[0], log_probs=logp, ref_log_probs=PI_REF.log())
    assert kl.shape == ()
    assert float(kl) == pytest.approx(KL_CLOSED_FORM, rel=1e-12)


def test_full_over_batch_shape() -> None:
    log_probs = torch.stack([PI, PI_REF, PI]).log().reshape(3, 1, 4)
    ref_log_probs = torch.stack([PI_REF, PI, PI]).log().reshape(3, 1, 4)
    kl = kl_estimate("full", log_probs[..., 0], ref_log_probs[..., 0], log_probs, ref_log_probs)
    assert kl.shape == (3, 1)
    reverse = float((PI_REF * (PI_REF.log() - PI.log())).sum())
    torch.testing.assert_close(kl[:, 0], torch.tensor([KL_CLOSED_FORM, reverse, 0.0], dtype=F64))


def test_k2_is_half_squared_log_ratio() -> None:
    logp = torch.randn(5, 7, dtype=F64)
    ref_logp = torch.randn(5, 7, dtype=F64)
    torch.testing.assert_close(kl_estimate("k2", logp, ref_logp), 0.5 * (logp - ref_logp) ** 2)
    torch.testing.assert_close(kl_estimate("k1", logp, ref_logp), logp - ref_logp)


def test_full_with_zero_probability_tokens_is_finite_with_finite_gradients() -> None:
    # π puts 0 mass on token 2 (log π = -inf), where π_ref is 0 too: 0·(−inf) must not appear.
    log_probs = torch.tensor([math.log(0.5), math.log(0.5), -math.inf], dtype=F64, requires_grad=True)
    ref_log_probs = torch.tensor([math.log(0.25), math.log(0.75), -math.inf], dtype=F64, requires_grad=True)
    kl = kl_estimate("full", log_probs[0], ref_log_probs[0], log_probs, ref_log_probs)
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(0.5 / 0.75)
    assert kl.item() == pytest.approx(expected, rel=1e-12)
    kl.backward()
    assert torch.isfinite(log_probs.grad).all()
    assert torch.isfinite(ref_log_probs.grad).all()


def test_full_is_inf_where_reference_has_no_mass() -> None:
    log_probs = torch.log(torch.tensor([0.5, 0.5], dtype=F64))
    ref_log_probs = torch.tensor([0.0, -math.inf], dtype=F64)
    assert kl_estimate("full", log_probs[0], ref_log_probs[0], log_probs, ref_log_probs) == math.inf


@settings(max_examples=200, deadline=None)
@given(logit_lists)
def test_k3_nonnegative_and_full_nonnegative(logits: tuple[list[float], list[float]]) -> None:
    log_probs = torch.log_softmax(torch.tensor(logits[0]), dim=-1)
    ref_log_probs = torch.log_softmax(torch.tensor(logits[1]), dim=-1)
    # Every token as a possible sample x.
    assert (kl_estimate("k3", log_probs, ref_log_probs) >= 0).all()
    assert (kl_estimate("k2", log_probs, ref_log_probs) >= 0).all()
    full = kl_estimate("full", log_probs[0], ref_log_probs[0], log_probs, ref_log_probs)
    assert not torch.isnan(full)
    assert full >= 0


@settings(max_examples=100, deadline=None)
@given(st.lists(extreme_floats, min_size=2, max_size=VOCAB_SIZE))
def test_full_is_zero_for_identical_distributions(logits: list[float]) -> None:
    log_probs = torch.log_softmax(torch.tensor(logits), dim=-1)
    kl = kl_estimate("full", log_probs[0], log_probs[0], log_probs, log_probs.clone())
    assert float(kl) == 0.0
    for name in ("k1", "k2", "k3"):
        assert (kl_estimate(name, log_probs, log_probs) == 0).all()


def test_estimator_errors() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate("k4", x, x)
    with pytest.raises(ValueError, match="needs both"):
        kl_estimate("full", x, x)
    with pytest.raises(ValueError, match="needs both"):
        kl_estimate("full", x, x, log_probs=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="differ in shape"):
        kl_estimate("k1", x, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="does not match"):
        kl_estimate("full", x, x, torch.zeros(4, 5), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="differ in shape"):
        kl_estimate("full", x, x, torch.zeros(3, 5), torch.zeros(3, 6))
    assert KL_ESTIMATORS.names()[:4] == ("k1", "k2", "k3", "full")
    with pytest.raises(ValueError, match="unknown KL estimator 'k9'; registered: k1, k2, k3, full"):
        kl_estimate("k9", x, x)


def test_a_registered_estimator_is_used_by_name():
    name = "test_abs_k1"
    if name not in KL_ESTIMATORS:
        register_kl_estimator(name, lambda logp, ref_logp: (logp - ref_logp).abs())
    logp, ref = torch.tensor([-1.0, -0.5]), torch.tensor([-0.5, -1.0])
    assert kl_estimate(name, logp, ref).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="already registered"):
        register_kl_estimator("k2", lambda logp, ref_logp: logp)


# --------------------------------------------------------------------------- certainty


@pytest.mark.parametrize("kind", CERTAINTY_KINDS)
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_uniform_reference_has_zero_certainty(kind: str, temperature: float) -> None:
    j = certainty(torch.full((2, 3, VOCAB_SIZE), 1.7), temperature, kind)
    assert j.shape == (2, 3)
    torch.testing.assert_close(j, torch.zeros(2, 3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", CERTAINTY_KINDS)
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_one_hot_reference_has_full_certainty(kind: str, temperature: float) -> None:
    logits = torch.zeros(VOCAB_SIZE)
    logits[7] = 1e4
    assert float(certainty(logits, temperature, kind)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("masked", [-1e4, -math.inf])
def test_certainty_of_known_distribution(masked: float) -> None:
    # p = [0.5, 0.5, 0, ..., 0] over the 41-token vocabulary.
    logits = torch.full((VOCAB_SIZE,), masked)
    logits[:2] = 0.0
    log_v = math.log(VOCAB_SIZE)
    neg = certainty(logits, 1.0, "negentropy")
    top = certainty(logits, 1.0, "max_prob")
    assert float(neg) == pytest.approx(1 - math.log(2) / log_v, abs=1e-6)
    assert float(top) == pytest.approx(1 + math.log(0.5) / log_v, abs=1e-6)
    # For two equal tokens both definitions coincide.
    assert float(neg) == pytest.approx(float(top), abs=1e-6)


@pytest.mark.parametrize("kind", CERTAINTY_KINDS)
def test_higher_temperature_flattens(kind: str) -> None:
    logits = torch.linspace(-3.0, 5.0, VOCAB_SIZE)
    js = [float(certainty(logits, t, kind)) for t in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(js, js[1:], strict=False)), js


def test_certainty_float64_and_low_precision_inputs() -> None:
    logits = torch.linspace(-3.0, 5.0, VOCAB_SIZE)
    assert certainty(logits.double(), 4.0).dtype == F64
    j_bf16 = certainty(logits.bfloat16(), 4.0)
    assert j_bf16.dtype == torch.float32
    assert float(j_bf16) == pytest.approx(float(certainty(logits, 4.0)), abs=1e-2)


def test_certainty_has_no_gradient() -> None:
    logits = torch.randn(3, VOCAB_SIZE, requires_grad=True)
    assert not certainty(logits, 4.0).requires_grad


@settings(max_examples=200, deadline=None)
@given(
    st.lists(extreme_floats, min_size=2, max_size=VOCAB_SIZE),
    st.sampled_from([0.25, 1.0, 4.0, 100.0]),
    st.sampled_from(CERTAINTY_KINDS),
)
def test_certainty_in_unit_interval(logits: list[float], temperature: float, kind: str) -> None:
    j = certainty(torch.tensor(logits), temperature, kind)
    assert torch.isfinite(j)
    assert 0.0 <= float(j) <= 1.0


def test_certainty_errors() -> None:
    logits = torch.zeros(4, VOCAB_SIZE)
    with pytest.raises(ValueError, match="unknown certainty kind"):
        certainty(logits, 4.0, "entropy")
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            certainty(logits, bad)
    with pytest.raises(ValueError, match="vocabulary"):
        certainty(torch.zeros(4, 1), 4.0)
    with pytest.raises(ValueError, match="vocabulary"):
        certainty(torch.tensor(0.0), 4.0)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("floor", [0.0, 0.1, 0.37, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_critical_weight_endpoints_are_exact(floor: float, dtype: torch.dtype) -> None:
    w = prioritized_weights(torch.tensor([1.0, 0.0], dtype=dtype), beta=150.0, floor=floor)
    assert w.dtype == dtype
    assert float(w[0]) == 1.0
    assert float(w[1]) == float(torch.tensor(floor, dtype=dtype))


@pytest.mark.parametrize("beta", [1e-3, 0.5, 150.0, 1e4])
def test_zero_certainty_gives_floor_for_any_beta(beta: float) -> None:
    assert float(prioritized_weights(torch.zeros(()), beta=beta, floor=0.0)) == 0.0


def test_critical_weight_known_value() -> None:
    w = prioritized_weights(torch.tensor(0.99, dtype=F64), beta=150.0)
    assert float(w) == pytest.approx(0.99**150, rel=1e-12)
    w32 = prioritized_weights(torch.tensor(0.99), beta=150.0)
    assert float(w32) == pytest.approx(0.99**150, rel=1e-4)
    wb = prioritized_weights(torch.tensor(0.99, dtype=F64), beta=150.0, floor=0.2)
    assert float(wb) == pytest.approx(0.8 * 0.99**150 + 0.2, rel=1e-12)


@pytest.mark.parametrize("floor", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_huge_beta_is_finite_and_bounded(floor: float, dtype: torch.dtype) -> None:
    j = torch.tensor([0.0, 1e-30, 0.5, 0.999, 1.0]).to(dtype)
    w = prioritized_weights(j, beta=1e4, floor=floor)
    assert torch.isfinite(w).all()
    lo = float(torch.tensor(floor, dtype=w.dtype))
    assert ((w >= lo) & (w <= 1.0)).all(), w
    assert float(w[-1]) == 1.0


def test_weights_are_monotone_in_certainty() -> None:
    j = torch.linspace(0.0, 1.0, 1001, dtype=F64)
    w = prioritized_weights(j, beta=150.0, floor=0.1)
    assert (w[1:] >= w[:-1]).all()


def test_out_of_range_certainty_is_clamped() -> None:
    w = prioritized_weights(torch.tensor([-0.1, 1.0 + 1e-6]), beta=1e4)
    assert w.tolist() == [0.0, 1.0]


def test_no_gradient_flows_to_certainty() -> None:
    j = torch.tensor([0.2, 0.9, 1.0], requires_grad=True)
    logp = torch.tensor([-0.1, -2.0, -0.5], requires_grad=True)
    w = prioritized_weights(j)
    assert not w.requires_grad
    (w * kl_estimate("k3", logp, torch.zeros(3))).sum().backward()
    assert j.grad is None
    assert logp.grad is not None


def test_weight_errors() -> None:
    j = torch.tensor([0.5])
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="beta"):
            prioritized_weights(j, beta=bad)
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="floor"):
            prioritized_weights(j, floor=bad)


# ----------------------------------------------------------------------------- numerics at the edges


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_estimators_are_computed_in_float32(dtype):
    logp, ref = torch.tensor([-12.0], dtype=dtype), torch.tensor([0.0], dtype=dtype)
    k3 = kl_estimate("k3", logp, ref)
    assert k3.dtype == torch.float32
    assert torch.isfinite(k3).all() and k3.item() == pytest.approx(math.exp(12) - 13, rel=1e-3)


def test_nan_inputs_raise_rather_than_change_the_objective():
    with pytest.raises(ValueError, match="certainty holds NaN"):
        prioritized_weights(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="logp holds NaN"):
        kl_estimate("k2", torch.tensor([float("nan")]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="logp holds -inf"):
        kl_estimate("k3", torch.tensor([float("-inf")]), torch.tensor([0.0]))


def test_beta_is_bounded_to_what_float32_holds():
    with pytest.raises(ValueError, match="beta must be a number in"):
        prioritized_weights(torch.tensor([1.0]), beta=1e39)
    assert prioritized_weights(torch.tensor([1.0, 0.5]), beta=1e6).tolist() == [1.0, 0.0]

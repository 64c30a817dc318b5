"""Headroom and jump of one state from the sampled successes of its plausible tokens (arms).

At a state (prompt, y_<t) the policy π gives each arm a its probability π(a); K_a sampled
continuations after a give s_a successes, an estimate of Q(a) = P(success | y_<t, a). Then

- V = Σ_a π(a) Q(a), the state's value (the mass of the tokens left out, below the arm floor,
  is counted as failing: the point estimate, and its interval reaches up by that mass);
- headroom H = max_{a ∈ A} Q(a) − V over the plausible arms A (π(a) ≥ ε, and the played token);
- jump D = Q(y_t) − V, how much the played token moved the odds (Σ_t D_t = R − V_0).

Intervals: each Q(a) is drawn from its Jeffreys posterior Beta(s + ½, K − s + ½) (well defined at
0/K and K/K, close to nominal coverage for a binomial), independently per arm, and the 2.5 and
97.5 percentiles of H, D and V over the draws are taken. An arm at 0/K or K/K may sit exactly on
its boundary (a fatal token; a continuation that cannot fail), where the draws never go: the
interval is widened to hold the same percentiles of draws with those arms pinned there, and the
point estimate. The planted check
(``tests/test_criticality.py``) measures their coverage where H is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COVERAGE = 0.95
"""The intervals' nominal coverage."""


@dataclass(frozen=True)
class StateEstimate:
    """Point estimates and intervals of V, H and D at one state."""

    value: float
    value_low: float
    value_high: float
    headroom: float
    headroom_low: float
    headroom_high: float
    jump: float
    jump_low: float
    jump_high: float


def estimate_state(
    probs: np.ndarray,
    successes: np.ndarray,
    trials: np.ndarray,
    plausible: np.ndarray,
    played: int,
    rng: np.random.Generator,
    draws: int = 400,
) -> StateEstimate:
    """V, H and D at one state from its arms' counts (see :mod:`agents.evaluation.headroom`).

    Args:
        probs: π(a) of each arm.
        successes, trials: each arm's successful continuations and how many ran (trials >= 1).
        plausible: bool per arm, the arms over which H takes its max (the played one among them).
        played: the index (into the arms) of the token the episode played.
        rng: the draws' generator.
    """
    probs = np.asarray(probs, dtype=np.float64)
    successes, trials = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    rest = max(0.0, 1.0 - float(probs.sum()))
    q = successes / trials
    value = float(probs @ q)
    headroom = float(q[plausible].max() - value)
    jump = float(q[played] - value)
    drawn = rng.beta(successes + 0.5, trials - successes + 0.5, size=(draws, len(probs)))
    # An arm at 0/K or K/K may sit exactly on its boundary (a fatal token, a continuation that
    # cannot fail), where the posterior draws never go: the interval also holds the draws with
    # those arms pinned there (without it, 91 % coverage in the planted check at p = 0.98).
    pinned = drawn.copy()
    pinned[:, successes == 0] = 0.0
    pinned[:, successes == trials] = 1.0
    tail = 100 * (1 - COVERAGE) / 2
    free = np.percentile(_summaries(drawn, probs, plausible, played), [tail, 100 - tail], axis=1)
    fixed = np.percentile(_summaries(pinned, probs, plausible, played), [tail, 100 - tail], axis=1)
    low, high = np.minimum(free[0], fixed[0]), np.maximum(free[1], fixed[1])
    (value_low, headroom_low, jump_low), (value_high, headroom_high, jump_high) = low, high
    # The arms left out can only add to V (up to their mass), so only lower H and D.
    return StateEstimate(
        value,
        min(float(value_low), value),
        max(float(value_high), value) + rest,
        headroom,
        min(float(headroom_low), headroom) - rest,
        max(float(headroom_high), headroom),
        jump,
        min(float(jump_low), jump) - rest,
        max(float(jump_high), jump),
    )


def _summaries(drawn: np.ndarray, probs: np.ndarray, plausible: np.ndarray, played: int) -> np.ndarray:
    """V, H and D ``[3, draws]`` for draws of every arm's Q ``[draws, arms]``."""
    value = drawn @ probs
    return np.stack([value, drawn[:, plausible].max(axis=1) - value, drawn[:, played] - value])


def estimate_arms(
    tokens: np.ndarray,
    probs: np.ndarray,
    successes: np.ndarray,
    trials: np.ndarray,
    played_token: int,
    epsilon: float,
    rng: np.random.Generator,
    draws: int = 400,
) -> StateEstimate:
    """:func:`estimate_state` of arms named by token id: plausible where π(a) >= ``epsilon``, and
    the played token (which must be among ``tokens``)."""
    tokens = np.asarray(tokens)
    plausible = (np.asarray(probs) >= epsilon) | (tokens == played_token)
    played = int(np.flatnonzero(tokens == played_token)[0])
    return estimate_state(probs, successes, trials, plausible, played, rng, draws)


def straddles(estimate: StateEstimate, threshold: float) -> bool:
    """Whether the headroom's interval holds ``threshold`` inside (more continuations may settle it)."""
    return estimate.headroom_low < threshold <= estimate.headroom_high

"""Critical-token selectors: the rules RL methods use to pick tokens to treat differently.

A selector scores every token of a :class:`~agents.evaluation.criticality.CriticalityTable`
(higher: more likely to decide the outcome) and picks the tokens its method acts on (its own
budget). :mod:`agents.evaluation.selector_metrics` scores both against the ground truth.

Every registered KL weighting is a selector for free (:func:`all_selectors`): its score is
``−w`` (the less KL a token pays, the more it is selected) and it picks the tokens with
``w <= 0.5``, computed through
the same :class:`~agents.rl.weighting.TokenBatch` the trainers give it (a weighting that needs a
field a table cannot give, a critic's ``values``, is listed as not scorable). The literature's
selectors are registered here with the budgets their papers use; register your own with
:func:`register_selector`::

    @register_selector("low_margin", budget=0.05)
    def low_margin(table, context):
        return -table.top_prob  # the 5 % of tokens where the policy's top choice is least sure
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.evaluation.criticality_table import CriticalityTable
from agents.kl import certainty
from agents.registry import Registry
from agents.rl.config import RLConfig
from agents.rl.methods import METHODS, apply_method
from agents.rl.weighting import KL_WEIGHTINGS, TokenBatch, TrainingProblems, compute_weights

Scores = np.ndarray
KL_SETTINGS = frozenset({"kl_weighting", "certainty_kind", "beta_share", "beta"})
"""The settings a method may fix and still be only a KL weighting (so a selector)."""
TABLE_FIELDS = frozenset(
    {"mask", "actions", "logp", "entropy", "ref_logp", "certainty", "rewards", "groups", "critical"}
)
"""The :data:`~agents.rl.weighting.BATCH_FIELDS` a ground-truth table can give a weighting."""


@dataclass
class SelectorContext:
    """What selectors may need beyond the table: the run settings, the frozen reference and
    training problems (for a weighting's one-time calibration, e.g. ``critical_auto``'s β)."""

    reference: PreTrainedModel | None
    problems: TrainingProblems
    config: RLConfig = field(default_factory=RLConfig)
    seed: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    """What a selector settled once (e.g. a calibrated β), by selector name, for the report."""


@dataclass(frozen=True)
class Selector:
    """``score(table, context) -> [n]`` (higher: more critical) and its own budget: a share of the
    tokens (the top ones by score), or ``picks(table, context, scores) -> bool [n]``."""

    score: Callable[[CriticalityTable, SelectorContext], Scores]
    budget: float | None = None
    pick: Callable[[CriticalityTable, SelectorContext, Scores], np.ndarray] | None = None

    def picks(self, table: CriticalityTable, context: SelectorContext, scores: Scores) -> np.ndarray:
        """The tokens this selector's method acts on."""
        if self.pick is not None:
            return self.pick(table, context, scores)
        count = max(1, round((self.budget or 0.0) * len(scores)))
        tie_break = np.random.default_rng(context.seed).random(len(scores))
        picks = np.zeros(len(scores), dtype=bool)
        picks[np.lexsort((tie_break, -scores))[:count]] = True  # ties broken at random
        return picks


SELECTORS: Registry[Selector] = Registry("selector")
"""Every token selector by name (the KL weightings join at :func:`all_selectors`)."""


def register_selector(
    name: str, *, budget: float | None = None, pick: Callable | None = None
) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(table, context) -> scores`` as selector ``name`` picking the top
    ``budget`` share of tokens, or the tokens ``pick(table, context, scores)`` returns."""
    if (budget is None) == (pick is None):
        raise ValueError(f"selector {name!r}: give exactly one of budget (a share of tokens) or pick")
    return SELECTORS.decorator(name, lambda fn: Selector(fn, budget, pick))


# --------------------------------------------------------------------------- KL weightings


def token_batch(table: CriticalityTable, config: RLConfig) -> tuple[TokenBatch, np.ndarray]:
    """The table's episodes as a padded :class:`TokenBatch` ``[E, T]`` and the table row of each cell."""
    keys = table.group.astype(np.int64) * 1000 + table.episode
    _, first, episode = np.unique(keys, return_index=True, return_inverse=True)
    rows, length = int(episode.max()) + 1, int(table.position.max()) + 1
    where = np.full((rows, length), -1)
    where[episode, table.position] = np.arange(len(table))

    def grid(values: np.ndarray, fill: float = 0.0) -> torch.Tensor:
        out = np.full((rows, length), fill, dtype=np.asarray(values).dtype)
        out[episode, table.position] = values
        return torch.as_tensor(out)

    last = table.position == np.bincount(episode, minlength=rows)[episode] - 1
    logits = torch.as_tensor(table.ref_logits.astype(np.float32))
    batch = TokenBatch(
        "criticality",
        mask=torch.as_tensor(where >= 0),
        actions=grid(table.token.astype(np.int64)),
        logp=grid(table.logp),
        entropy=grid(table.entropy),
        ref_logp=grid(table.ref_logp),
        certainty=grid(
            certainty(logits, config.certainty_temperature, config.certainty_kind).double().numpy()
        ),
        rewards=grid(np.where(last, table.reward, 0.0)),
        groups=torch.as_tensor(table.group[first].astype(np.int64)),
        critical=grid(table.structural.astype(bool), False),
    )
    return batch, where


def weighting_selector(method: str) -> Selector:
    """Method ``method``'s KL weighting as a selector: score ``−w``, picks ``w <= 0.5``.

    (``−w``, not ``1 − w``: a weight of 1e-30 and one of 1e-20 both round 1 − w to 1.)"""

    def score(table: CriticalityTable, context: SelectorContext) -> Scores:
        config = apply_method(context.config, method)
        weighting = KL_WEIGHTINGS[config.kl_weighting]
        if config.beta_share is not None:
            if context.reference is None:
                raise ValueError(f"selector {method!r} calibrates on the reference: give one")
            config = weighting.prepare(context.reference, config, context.problems)
            context.notes[method] = f"beta {config.beta:.0f}"
        batch, where = token_batch(table, config)
        weights = compute_weights(config.kl_weighting, batch, config).numpy()
        out = np.zeros(len(table))
        out[where[where >= 0]] = -weights[where >= 0]
        return out

    return Selector(score, pick=lambda table, context, scores: scores >= -0.5)


def weighting_methods() -> dict[str, str | None]:
    """Each method that only sets a KL weighting -> None if a table can score it, else why not."""
    out: dict[str, str | None] = {}
    for name in METHODS:
        settings = METHODS[name]
        if not set(settings) <= KL_SETTINGS or "kl_weighting" not in settings:
            continue
        missing = sorted(set(KL_WEIGHTINGS[settings["kl_weighting"]].needs) - TABLE_FIELDS)
        out[name] = f"needs {', '.join(missing)}" if missing else None
    return out


def all_selectors() -> dict[str, Selector]:
    """Every scorable selector: the registered ones and every KL-weighting method."""
    selectors = {name: weighting_selector(name) for name, why in weighting_methods().items() if why is None}
    selectors.update({name: SELECTORS[name] for name in SELECTORS})
    return selectors


# --------------------------------------------------------------------------- the literature's


def _per_response(table: CriticalityTable, values: np.ndarray, reduce: Callable) -> np.ndarray:
    keys = table.group.astype(np.int64) * 1000 + table.episode
    out = np.empty(len(table))
    for key in np.unique(keys):
        rows = keys == key
        out[rows] = reduce(values[rows])
    return out


def _advantages(table: CriticalityTable) -> np.ndarray:
    """Each token's episode reward minus its group's mean (GRPO's advantage, unscaled)."""
    means = {g: table.reward[table.group == g].mean() for g in np.unique(table.group)}
    return table.reward - np.array([means[g] for g in table.group])


def _covariance(table: CriticalityTable) -> np.ndarray:
    """KL-Cov's per-token covariance term (log π − mean)(A − mean) over the batch."""
    advantages = _advantages(table)
    return (table.logp - table.logp.mean()) * (advantages - advantages.mean())


@register_selector("entropy_topk", budget=0.2)
def entropy_topk(table: CriticalityTable, context: SelectorContext) -> Scores:
    """The 20 % highest-entropy tokens of the batch ("Beyond the 80/20 rule", arXiv 2506.01939)."""
    return table.entropy


@register_selector("archer", pick=lambda table, context, scores: scores >= 0)
def archer(table: CriticalityTable, context: SelectorContext) -> Scores:
    """Archer's split ("dual-token constraints"): a token is high-entropy above its response's 80th entropy
    percentile (score: entropy minus that percentile)."""
    return table.entropy - _per_response(table, table.entropy, lambda v: np.quantile(v, 0.8))


@register_selector("kl_cov", budget=0.002)
def kl_cov(table: CriticalityTable, context: SelectorContext) -> Scores:
    """KL-Cov (arXiv 2505.22617): the top k = 0.2 % tokens by covariance of log π and advantage."""
    return _covariance(table)


def _clip_cov_picks(table: CriticalityTable, context: SelectorContext, scores: Scores) -> np.ndarray:
    """Clip-Cov's picks: a random r = 2e-4 share of tokens drawn among those whose covariance
    lies in [1, 5] (the paper's bounds)."""
    eligible = np.flatnonzero((scores >= 1.0) & (scores <= 5.0))
    count = min(len(eligible), round(2e-4 * len(scores)))
    picks = np.zeros(len(scores), dtype=bool)
    picks[np.random.default_rng(context.seed).choice(eligible, count, replace=False)] = True
    return picks


register_selector("clip_cov", pick=_clip_cov_picks)(lambda table, context: _covariance(table))


@register_selector("gtpo", pick=lambda table, context, scores: scores >= 2.0)
def gtpo(table: CriticalityTable, context: SelectorContext) -> Scores:
    """GTPO (token-level reward shaping with policy entropy) shapes each token's reward by its share
    of its response's entropy. Score: that share times the response's length (1: an average
    token); picks: twice the average."""
    total = _per_response(table, table.entropy, np.sum)
    length = _per_response(table, table.entropy, len)
    return table.entropy / np.maximum(total, 1e-12) * length


@register_selector("logratio", pick=lambda table, context, scores: scores >= np.log(2.0))
def logratio(table: CriticalityTable, context: SelectorContext) -> Scores:
    """|log π(y_t) − log π_ref(y_t)|: where RL moved the played token most (picks: a factor 2).
    0 everywhere on the reference itself."""
    return np.abs(table.logp - table.ref_logp)


@register_selector("attention", budget=0.05)
def attention(table: CriticalityTable, context: SelectorContext) -> Scores:
    """The 5 % of tokens the later tokens attend to most (the policy's mean attention over
    layers, heads and later positions)."""
    return table.attention


@register_selector("random", budget=0.05)
def random(table: CriticalityTable, context: SelectorContext) -> Scores:
    """5 % of tokens at random (the seeded baseline every selector must beat)."""
    return np.random.default_rng(context.seed).random(len(table))

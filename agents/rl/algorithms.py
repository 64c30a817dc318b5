"""Named algorithms: an advantage estimator + a policy loss + a loss aggregation + a group size,
with the hyperparameters that make each one work on the ``cpu`` preset.

=======================  =========================  ==========  ======================  ===  ==========
algorithm                advantage                  policy loss aggregation             G    KL default
=======================  =========================  ==========  ======================  ===  ==========
``ppo``                  ``gae`` (critic)           ppo_clip    token_mean              1    k2 in loss
``a2c``                  ``gae`` (critic)           vanilla     token_mean              1    k2 in loss
``grpo``                 ``grpo``                   ppo_clip    seq_mean_token_mean     8    k3 in loss
``dr_grpo``              ``dr_grpo``                ppo_clip    seq_mean_token_sum_norm 8    k3 in loss
``rloo``                 ``rloo``                   ppo_clip    seq_mean_token_mean     8    k3 in loss
``reinforce_pp``         ``reinforce_pp``           ppo_clip    token_mean              1    k2 in reward
``reinforce_pp_baseline`` ``reinforce_pp_baseline`` ppo_clip    token_mean              8    k3 in loss
``dapo``                 ``grpo`` + dynamic sampl.  clip 0.28   token_mean              8    k3 in loss
``gspo``                 ``grpo``                   gspo        seq_mean_token_mean     8    k3 in loss
``cispo``                ``grpo``                   cispo       token_mean              8    k3 in loss
=======================  =========================  ==========  ======================  ===  ==========

The group algorithms with unwhitened per-episode advantages (``grpo``, ``dr_grpo``, ``rloo``,
``dapo``, ``gspo``, ``cispo``) take lr 3e-5 instead of the ``cpu`` preset's 1e-4. The KL's
*weighting* is the method's (``--method``), so every algorithm runs with every weighting.
:func:`apply_algorithm` applies an algorithm's hyperparameters on top of a preset;
:func:`check_config` is the start-up check of every registered name a config uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.rl.advantages import ADVANTAGES, AdvantageEstimator
from agents.rl.config import RLConfig
from agents.rl.losses import LOSS_AGGREGATIONS, POLICY_LOSSES
from agents.rl.methods import method_settings
from agents.rl.registry import Registry
from agents.rl.weighting import check_weighting


@dataclass(frozen=True)
class Algorithm:
    """The pieces of a named algorithm, and the settings :func:`apply_algorithm` applies with it."""

    advantage: str
    policy_loss: str
    loss_agg: str
    group_size: int = 1
    settings: dict[str, object] = field(default_factory=dict)


ALGORITHMS: Registry[Algorithm] = Registry("algorithm")


def register_algorithm(
    name: str, advantage: str, policy_loss: str, loss_agg: str, group_size: int = 1, **settings: object
) -> None:
    """Register algorithm ``name`` (pieces by their registered names; ``settings``: RLConfig values
    that ``--algo name`` applies on top of the preset, e.g. ``kl_estimator="k3"``)."""
    RLConfig().with_overrides(**settings)  # unknown or bad settings fail here, at registration
    ALGORITHMS.add(name, Algorithm(advantage, policy_loss, loss_agg, group_size, dict(settings)))


_K3_IN_LOSS = {"kl_estimator": "k3", "kl_in": "loss"}
# The group estimators' per-episode advantages are not whitened over the batch as GAE's are: at
# the cpu preset's lr 1e-4 GRPO peaked and collapsed (one seed from 94 % to 3 % training
# accuracy); at 3e-5 both seeds rose steadily (critical 91 % and 87 % held-out, uniform 49 % and
# 40 %; docs/algorithms.md).
_GROUP = {**_K3_IN_LOSS, "lr": 3e-5}
register_algorithm("ppo", "gae", "ppo_clip", "token_mean")
register_algorithm("a2c", "gae", "vanilla", "token_mean")
register_algorithm("grpo", "grpo", "ppo_clip", "seq_mean_token_mean", 8, **_GROUP)
register_algorithm("dr_grpo", "dr_grpo", "ppo_clip", "seq_mean_token_sum_norm", 8, **_GROUP)
register_algorithm("rloo", "rloo", "ppo_clip", "seq_mean_token_mean", 8, **_GROUP)
# REINFORCE++ folds the KL into each token's reward; the reward-to-go sums it over the rest of
# the episode, so its coefficient is per token of a ~200-token episode, not per episode.
register_algorithm(
    "reinforce_pp", "reinforce_pp", "ppo_clip", "token_mean", kl_estimator="k2", kl_in="reward", kl_coef=0.05
)
register_algorithm(
    "reinforce_pp_baseline", "reinforce_pp_baseline", "ppo_clip", "token_mean", 8, **_K3_IN_LOSS
)
# DAPO: clip-higher (0.2 / 0.28), token-mean loss, dynamic sampling (its overlong shaping has no
# counterpart here: every episode ends by the env's step limit).
register_algorithm(
    "dapo", "grpo", "ppo_clip", "token_mean", 8, clip_coef_high=0.28, dynamic_sampling=True, **_GROUP
)
# GSPO's sequence ratio moves far less than a token's: its paper clips at 3e-4 / 4e-4.
register_algorithm(
    "gspo", "grpo", "gspo", "seq_mean_token_mean", 8, clip_coef=3e-4, clip_coef_high=4e-4, **_GROUP
)
# CISPO: no lower bound on the importance weight (1 - 1 = 0), an upper one at 1 + 0.28.
register_algorithm("cispo", "grpo", "cispo", "token_mean", 8, clip_coef=1.0, clip_coef_high=0.28, **_GROUP)


def apply_algorithm(config: RLConfig, name: str) -> RLConfig:
    """``config`` running algorithm ``name``, with the settings the algorithm brings."""
    return config.with_overrides(algo=name, **ALGORITHMS[name].settings)


@dataclass(frozen=True)
class Pieces:
    """What a config runs, resolved: its own choices, else its algorithm's."""

    advantage: str
    estimator: AdvantageEstimator
    policy_loss: str
    loss_agg: str
    group_size: int


def resolve(config: RLConfig) -> Pieces:
    """The pieces ``config`` runs (its fields where set, else its algorithm's); unknown names fail."""
    algorithm = ALGORITHMS[config.algo]
    advantage = config.advantage or algorithm.advantage
    policy_loss = config.policy_loss or algorithm.policy_loss
    loss_agg = config.loss_agg or algorithm.loss_agg
    POLICY_LOSSES[policy_loss], LOSS_AGGREGATIONS[loss_agg]  # noqa: B018 -- unknown names raise here
    group_size = algorithm.group_size if config.group_size is None else config.group_size
    return Pieces(advantage, ADVANTAGES[advantage], policy_loss, loss_agg, group_size)


def batch_fields(config: RLConfig, pieces: Pieces) -> frozenset[str]:
    """The :data:`~agents.rl.weighting.BATCH_FIELDS` the agents trainer gives a KL weighting with
    ``config``: everything a rollout records, groups only with ``group_size >= 2``, the critic's
    values only with an estimator that trains one, advantages only with the KL in the loss."""
    fields = {"logp", "entropy", "ref_logp", "certainty", "rewards", "critical"}
    if pieces.group_size >= 2:
        fields.add("groups")
    if pieces.estimator.uses_critic:
        fields.add("values")
    if config.kl_in == "loss":
        fields.add("advantages")
    return frozenset(fields)


def check_config(config: RLConfig) -> Pieces:
    """The start-up check of a run: every registered name exists and the group size fits.

    Raises:
        ValueError: one line naming the bad setting (and, for a name, the registered ones).
    """
    pieces = resolve(config)
    check_weighting(
        config.kl_weighting, batch_fields(config, pieces), f"agents backend with algo {config.algo!r}"
    )
    grouped = pieces.estimator.needs_groups or config.dynamic_sampling
    if grouped and pieces.group_size < 2:
        raise ValueError(
            f"advantage {pieces.advantage!r}{' with dynamic_sampling' * config.dynamic_sampling} "
            f"needs group_size >= 2, got {pieces.group_size}"
        )
    if config.episodes_per_update % pieces.group_size:
        raise ValueError(
            f"episodes_per_update ({config.episodes_per_update}) must be a multiple of "
            f"group_size ({pieces.group_size})"
        )
    return pieces


def algorithm_and_method(config: RLConfig, algo: str | None, method: str | None) -> RLConfig:
    """``config`` with algorithm ``algo``'s settings, then method ``method``'s (either may be None)."""
    if algo is not None:
        config = apply_algorithm(config, algo)
    if method is not None:
        config = config.with_overrides(**method_settings(method))
    return config

"""RL fine-tuning settings: one frozen dataclass, with named presets.

``paper`` is Table 3 of Vassoyan et al. (2025); ``cpu`` is tuned so that the shipped tiny
reference model learns visibly within minutes on a 2-core CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from agents.kl import CERTAINTY_KINDS, KL_ESTIMATORS, MAX_BETA
from agents.settings import check_field_types, read_json, settings_from_mapping
from arith_gym.operands import split_offset
from arith_gym.rules import REWARD_MODES

KL_PLACEMENTS = ("loss", "reward")
PG_TOKENS = ("all", "entropy_topk")
CHOICES: dict[str, tuple[str, ...]] = {
    "pg_tokens": PG_TOKENS,
    "kl_in": KL_PLACEMENTS,
    "certainty_kind": CERTAINTY_KINDS,
    "reward_mode": REWARD_MODES,
}
"""The settings that take one of a fixed set of values (registered names are checked at start)."""


@dataclass(frozen=True)
class RLConfig:
    """Everything that defines an RL fine-tuning run (defaults: the paper's values where it gives them)."""

    # --- algorithm
    algo: str = "ppo"
    """A registered algorithm (:mod:`agents.rl.algorithms`: ``ppo``, ``a2c``, ``grpo``, ...): its
    advantage estimator, policy loss, loss aggregation and group size, unless set below.
    Registered names (algorithms, pieces, KL weightings) are checked when a run starts
    (:func:`agents.rl.algorithms.check_config`), after any plug-in has registered its own."""
    advantage: str | None = None
    """Advantage estimator (:mod:`agents.rl.advantages`); None: the algorithm's."""
    policy_loss: str | None = None
    """Policy loss (:mod:`agents.rl.losses`); None: the algorithm's."""
    loss_agg: str | None = None
    """Loss aggregation (:mod:`agents.rl.losses`); None: the algorithm's."""
    group_size: int | None = None
    """Episodes per problem G (group estimators need G >= 2): an update plays
    ``episodes_per_update / G`` problems G times each. None: the algorithm's."""
    loss_length_norm: float | None = None
    """The constant length of ``seq_mean_token_sum_norm``; None: the env's episode step limit."""
    dynamic_sampling: bool = False
    """DAPO: drop groups whose rewards are all equal and sample more problems (counted in the
    budget) until the update has ``episodes_per_update / G`` informative groups."""
    max_sampling_rounds: int = 4
    """Dynamic sampling gives up after this many rollouts per update and trains on what it has."""
    lr: float = 1e-5
    """Adam learning rate."""
    gamma: float = 1.0
    """Discount of the returns (``gae``)."""
    gae_lambda: float = 1.0
    """GAE's lambda (``gae``)."""
    clip_coef: float = 0.2
    """PPO's clip range of the importance ratio (lower, and upper unless ``clip_coef_high``)."""
    clip_coef_high: float | None = None
    """Upper clip range if different from ``clip_coef`` (asymmetric clipping)."""
    value_coef: float = 0.1
    """Weight of the value loss (estimators with a critic, ``gae``, only)."""
    entropy_coef: float = 5e-4
    """Weight of the entropy bonus."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm."""
    normalize_advantages: bool = True
    """Whiten ``gae``'s advantages over the batch (the group estimators normalise their own way)."""
    update_epochs: int = 1
    """Passes over each batch of episodes."""
    minibatches: int = 1
    """Minibatches (optimizer steps) per pass over the batch."""
    episodes_per_update: int = 50
    """Episodes played per update (the batch)."""
    total_episodes: int = 5000
    """The run's budget of episodes."""
    temperature: float | None = None
    """Policy sampling temperature; None: the one recorded with the reference model."""
    value_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the value head (an MLP on the LM's last hidden state)."""
    pg_tokens: str = "all"
    """``entropy_topk``: the policy gradient only on the ``entropy_top_fraction`` of tokens with the
    highest policy entropy in the batch (Wang et al. 2025, "Beyond the 80/20 rule")."""
    entropy_top_fraction: float = 0.2
    """The share of tokens ``pg_tokens=entropy_topk`` keeps."""
    kl_cov_fraction: float = 0.0
    """KL-Cov (Cui et al. 2025): penalise ``kl_cov_coef * |log pi - log pi_old|`` on this fraction of
    tokens with the largest covariance between log-prob and advantage; 0 switches it off."""
    kl_cov_coef: float = 1.0
    """KL-Cov's coefficient."""
    # --- KL to the reference model
    kl_weighting: str = "critical"
    """A registered KL weighting (:mod:`agents.rl.weightings`): ``none``, ``uniform``, ``critical``,
    ``oracle_critical``, or a plug-in's."""
    kl_coef: float = 5.0
    """Coefficient of the (weighted) KL to the reference."""
    kl_estimator: str = "k2"
    """A registered KL estimator (:data:`agents.kl.KL_ESTIMATORS`: ``k1``, ``k2``, ``k3``, ``full``)."""
    kl_in: str = "loss"
    """``loss``: a KL term in the loss (the paper); ``reward``: subtracted from each token's reward."""
    adaptive_kl_target: float | None = None
    """If set, the KL coefficient adapts (Ziegler et al. 2019) towards this mean KL per token."""
    adaptive_kl_horizon: int = 10000
    """Episodes over which the adaptive KL coefficient moves by its full step."""
    beta: float = 150.0
    """Exponent β of the prioritized KL's weights J^β (``critical``)."""
    beta_share: float | None = None
    """``critical_auto``: β calibrated before RL so that this share of the tokens the reference samples
    gets a weight J^β below 1/2 (:mod:`agents.rl.calibration`); None: ``beta`` as set."""
    weight_floor: float = 0.0
    """The smallest KL weight of ``critical``: ``(1 - floor) J^β + floor``."""
    certainty_kind: str = "negentropy"
    """What the certainty J measures: ``negentropy`` (the paper's Eq. 2) or ``max_prob``."""
    certainty_temperature: float = 4.0
    """Temperature of the reference's distribution when J is taken."""
    # --- task and bookkeeping
    split: str = "plus1"
    """The split RL trains and is evaluated on (``plus1``: one operand N+1 digits long, ...)."""
    reward_mode: str = "binary"
    """``binary``: 1 for a right result, else 0; ``ternary``: 1, else -1."""
    eval_every: int = 10
    """Evaluate every this many updates (and at the end)."""
    eval_episodes: int = 100
    """Held-out problems per split in each intermediate evaluation."""
    eval_greedy: bool = True
    """Also evaluate greedily (doubles evaluation time; sampled accuracy is always measured)."""
    final_eval_episodes: int | None = None
    """Held-out problems of ``split`` in the final evaluation (None: ``eval_episodes``); the earlier
    evaluations use the first ``eval_episodes`` of them (:mod:`agents.evaluation.heldout`)."""
    final_comfort_episodes: int | None = None
    """Held-out comfort problems in the final evaluation (None: as many as of ``split``)."""
    eval_set_seed: int = 0
    """Seed of the held-out evaluation set: one for every run, so runs are paired problem by problem."""
    checkpoint_every: int = 10
    """Save a checkpoint every this many updates (and at the end)."""
    seed: int = 0
    """Seed of the run (problems, sampling, value head)."""

    def __post_init__(self) -> None:
        check_field_types(self)
        # A plug-in's estimator registers before its config is made.
        choices = {**CHOICES, "kl_estimator": KL_ESTIMATORS.names()}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        positive = ("lr", "certainty_temperature", "beta", "max_grad_norm", "adaptive_kl_horizon")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        at_least_one = ("update_epochs", "minibatches", "episodes_per_update", "total_episodes")
        at_least_one += ("max_sampling_rounds",)
        for name in ("seed", "eval_set_seed"):  # numpy's SeedSequence takes no negative entropy
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)}")
        if self.group_size is not None and self.group_size < 1:
            raise ValueError(f"group_size must be at least 1, got {self.group_size}")
        for name in ("final_eval_episodes", "final_comfort_episodes"):
            if getattr(self, name) is not None and getattr(self, name) < self.eval_episodes:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must be at least eval_episodes ({self.eval_episodes})"
                )
        if self.beta_share is not None and not 0.0 < self.beta_share < 1.0:
            raise ValueError(f"beta_share must be in (0, 1), got {self.beta_share}")
        if self.loss_length_norm is not None and not self.loss_length_norm > 0:
            raise ValueError(f"loss_length_norm must be positive, got {self.loss_length_norm}")
        for name in at_least_one + ("eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda", "weight_floor", "kl_cov_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.entropy_top_fraction <= 1.0:
            raise ValueError(f"entropy_top_fraction must be in (0, 1], got {self.entropy_top_fraction}")
        for name in ("value_coef", "entropy_coef", "kl_coef", "clip_coef", "kl_cov_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.clip_coef_high is not None and self.clip_coef_high < 0:
            raise ValueError(f"clip_coef_high must be non-negative, got {self.clip_coef_high}")
        if self.minibatches > self.episodes_per_update:
            raise ValueError("minibatches cannot exceed episodes_per_update")
        if self.adaptive_kl_target is not None and self.adaptive_kl_target <= 0:
            raise ValueError("adaptive_kl_target must be positive")
        if self.beta > MAX_BETA:
            raise ValueError(f"beta must be at most {MAX_BETA:g}, got {self.beta}")
        if any(width < 1 for width in self.value_hidden):
            raise ValueError(
                f"value_hidden must be a list of positive layer widths, got {list(self.value_hidden)}"
            )
        split_offset(self.split)

    @property
    def num_updates(self) -> int:
        """Updates in the budget (without dynamic sampling, which spends more episodes per update)."""
        return -(-self.total_episodes // self.episodes_per_update)

    def with_overrides(self, **overrides) -> RLConfig:
        """A copy with some settings changed (unknown names or bad values are a ``ValueError``)."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown RL settings: {sorted(unknown)}")
        return replace(self, **overrides)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, values: object, source: str = "RL settings") -> RLConfig:
        """An RLConfig from a JSON object (e.g. a run's ``config.json``); errors name ``source``."""
        return settings_from_mapping(cls, values, source)

    @classmethod
    def from_file(cls, path: str | Path) -> RLConfig:
        """Load a JSON config file; a ``preset`` key starts from that preset (default ``cpu``)."""
        values = read_json(path)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of settings, got {type(values).__name__}")
        preset = values.pop("preset", "cpu")
        if preset not in PRESETS:
            raise ValueError(f"{path}: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        return settings_from_mapping(cls, values, str(path), base=PRESETS[preset])


PRESETS: dict[str, RLConfig] = {
    # Table 3 of the paper: A2C, lr 1e-6, gamma 1, value coef 0.1, entropy coef 5e-4,
    # KL coef 5, beta 150, k2 estimator, 50 episodes per update, 1 repeat, T 2, certainty T 4.
    "paper": RLConfig(
        algo="a2c",
        lr=1e-6,
        gamma=1.0,
        value_coef=0.1,
        entropy_coef=5e-4,
        kl_coef=5.0,
        beta=150.0,
        kl_estimator="k2",
        episodes_per_update=50,
        update_epochs=1,
        temperature=2.0,
        certainty_temperature=4.0,
    ),
    # For the shipped tiny model on a 2-core CPU: a few minutes per run on one core, so that
    # `arith-rl compare` fits several seeds of two methods in 15 minutes. The tiny model is far
    # less sharp than GPT-2: at certainty temperature 4 every token has J**150 ~ 0 (prioritized
    # KL would switch the KL off everywhere), so J is taken at T 1, where J**150 averages about
    # 0.3 at the critical tokens and 0.96 elsewhere. KL coefficient 1, not the paper's 5: at 5
    # the standard KL froze the N+1 accuracy and a critical run could fall back, so 4 seeds
    # could not separate the methods (docs/results.md); at 1 both
    # learn, the runs are steadier, and the uniform penalty still holds (no KL learns faster).
    "cpu": RLConfig(
        algo="ppo",
        lr=1e-4,
        episodes_per_update=64,
        update_epochs=1,
        minibatches=2,
        total_episodes=512,
        kl_coef=1.0,
        certainty_temperature=1.0,
        eval_every=4,
        # Intermediate evaluations on 100 held-out problems per split, the final one on 400 plus1
        # (one run's 95% interval within about +-5 points) and 200 comfort problems.
        eval_episodes=100,
        final_eval_episodes=400,
        final_comfort_episodes=200,
        eval_greedy=False,
        # A crash or Ctrl-C loses at most 2 updates (about 25 s); a checkpoint takes about 0.01 s.
        checkpoint_every=2,
    ),
}


def eval_set_sizes(config: RLConfig) -> tuple[int, int]:
    """The final evaluation's problem counts: (``split``, ``comfort``)."""
    harder = config.final_eval_episodes or config.eval_episodes
    return harder, config.final_comfort_episodes or harder

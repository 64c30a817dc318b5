"""Fine-tuning with Stable-Baselines3's PPO or A2C from an :class:`~agents.rl.config.RLConfig`.

Every ``RLConfig`` field is accounted for in one of four tables below: passed to the SB3
algorithm under SB3's name, passed to the LM policy under its own name, used by
:func:`train_sb3` itself, or not expressible in SB3 (then it must keep its default, else
:func:`train_sb3` refuses). :func:`check_mapping` fails for a field in none of them, so a new
``RLConfig`` field cannot go silently unmapped.
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.lm.model import load_reference
from agents.rl.bookkeeping import RunRecord, prepared_config
from agents.rl.config import RLConfig
from agents.rl.weighting import check_weighting
from agents.sb3.env import make_sb3_env
from agents.sb3.kl_penalty import KLA2C, KLPPO, SB3_BATCH_FIELDS
from agents.sb3.policy import KL_SETTINGS, LMActorCriticPolicy
from arith_gym.rules import EnvConfig
from arith_gym.task import get_task

SB3_ALGOS = ("sb3-ppo", "sb3-a2c")
SB3_MODEL = "sb3_model.zip"
"""SB3's own save of the whole policy (a pickle: load it only from a run you made yourself)."""
SB3_SETTINGS: dict[str, object] = {"lr": 1e-5, "episodes_per_update": 8, "eval_every": 2}
"""What ``arith-rl compare`` changes in the preset for an SB3 run (the user's ``--set`` still wins).

At the ``cpu`` preset's lr 1e-4 SB3's PPO wrecked the model (0 % on ``plus1`` and the comfort
zone within 22 episodes): its minibatches are capped at 128 steps, so it takes many more Adam
steps per episode than ``agents.rl``. At 1e-5 it keeps the comfort zone and learns; at 1e-6 it
barely moves (docs/sb3.md). 8 episodes per update: about 1,250 steps per rollout, 10 gradient
steps of 128, and an evaluation every 16 episodes, so a 64-episode run shows a trend.
"""

ALGORITHM_ARGUMENTS: dict[str, str] = {
    "lr": "learning_rate",
    "gamma": "gamma",
    "gae_lambda": "gae_lambda",
    "entropy_coef": "ent_coef",
    "value_coef": "vf_coef",
    "max_grad_norm": "max_grad_norm",
    "normalize_advantages": "normalize_advantage",
    "seed": "seed",
}
"""RLConfig field -> the keyword of SB3's PPO and A2C that takes it."""
PPO_ARGUMENTS: dict[str, str] = {"update_epochs": "n_epochs", "clip_coef": "clip_range"}
"""RLConfig field -> SB3 PPO keyword (A2C takes one gradient step per rollout, unclipped)."""
POLICY_ARGUMENTS: tuple[str, ...] = ("temperature", "value_hidden", *KL_SETTINGS)
""":class:`~agents.sb3.policy.LMActorCriticPolicy` keywords named as the RLConfig fields."""
USED_HERE: tuple[str, ...] = (
    "algo",  # the local algorithm: an SB3 run takes its own (sb3-ppo / sb3-a2c)
    "episodes_per_update",  # sizes the rollouts and minibatches
    "minibatches",
    "total_episodes",  # the budget, counted by a callback
    "split",
    "reward_mode",
    "eval_every",
    "eval_episodes",
    "final_eval_episodes",
    "final_comfort_episodes",
    "eval_set_seed",
    "eval_greedy",
    "kl_in",  # SB3 has no loss hook: the KL always goes in the reward
    "checkpoint_every",  # an SB3 run is not checkpointed: an interrupted one starts again
    "beta_share",  # the weighting's calibration (critical_auto), before training
    # Read only when a switch of UNSUPPORTED is on:
    "entropy_top_fraction",
    "kl_cov_coef",
    "adaptive_kl_horizon",
    "max_sampling_rounds",
)
UNSUPPORTED: dict[str, object] = {
    "clip_coef_high": None,
    "pg_tokens": "all",
    "kl_cov_fraction": 0.0,
    "adaptive_kl_target": None,
    # SB3's own advantage (GAE), loss and aggregation; one problem per episode:
    "advantage": None,
    "policy_loss": None,
    "loss_agg": None,
    "loss_length_norm": None,
    "group_size": None,
    "dynamic_sampling": False,
}
"""RLConfig fields SB3 cannot express, with the only value an SB3 run accepts."""


def check_mapping() -> None:
    """Raise ``RuntimeError`` if an RLConfig field is in none (or several) of the tables above."""
    tables = [set(ALGORITHM_ARGUMENTS), set(PPO_ARGUMENTS), set(POLICY_ARGUMENTS), set(USED_HERE)]
    tables.append(set(UNSUPPORTED))
    placed = [name for table in tables for name in table]
    names = {field.name for field in fields(RLConfig)}
    missing, twice = names - set(placed), {n for n in placed if placed.count(n) > 1}
    unknown = set(placed) - names
    if missing or twice or unknown:
        raise RuntimeError(f"RLConfig -> SB3 mapping: unmapped {missing}, twice {twice}, unknown {unknown}")


def check_sb3_config(config: RLConfig, algo: str) -> None:
    """Raise ``ValueError`` for an unknown SB3 algorithm or settings SB3 cannot express."""
    if algo not in SB3_ALGOS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; expected one of {SB3_ALGOS}")
    check_weighting(config.kl_weighting, SB3_BATCH_FIELDS, "SB3 backend")
    for name, allowed in UNSUPPORTED.items():
        if getattr(config, name) != allowed:
            raise ValueError(f"SB3 runs cannot express {name}={getattr(config, name)!r} (only {allowed!r})")


class _EpisodeBudget(BaseCallback):
    """Stops training at the first rollout that would start with ``total`` episodes done, and
    evaluates the LM before the first rollout and whenever an update brings the episode count
    past the next multiple of ``every``, into ``metrics.csv``."""

    def __init__(self, evaluate: Any, log_row: Any, every: int, total: int) -> None:
        super().__init__()
        self.evaluate, self.log_row, self.every, self.total = evaluate, log_row, every, total
        self.rollouts, self.episodes, self.next_evaluation = 0, 0, 0
        self.spent = False
        self.started: float | None = None

    def _on_rollout_start(self) -> None:
        # Called before each rollout, i.e. after the previous rollout's update.
        self.spent = self.episodes >= self.total
        if not self.spent:  # the final row is logged by the caller, after learn() returns
            self.log(evaluate=self.episodes >= self.next_evaluation)

    def log(self, evaluate: bool, final: bool = False) -> None:
        row: dict[str, float] = {"update": self.rollouts, "episodes": self.episodes}
        if self.started is not None:  # rollouts + updates since the last row, evaluations excluded
            row["update_seconds"] = time.perf_counter() - self.started
        if evaluate:
            row.update(self.evaluate(final=final))
            self.next_evaluation = (self.episodes // self.every + 1) * self.every
        if evaluate or self.rollouts == 0:
            self.log_row(row)
            self.started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.spent:  # returning False ends learn() before this partial rollout trains
            return False
        self.episodes += int(np.sum(self.locals["dones"]))
        return True

    def _on_rollout_end(self) -> None:
        if not self.spent:
            self.rollouts += 1


def train_sb3(
    config: RLConfig,
    run_dir: str | Path,
    reference_dir: str | Path,
    algo: str = "sb3-ppo",
    n_envs: int = 16,
    on_update: Any = None,
    max_batch_steps: int = 128,
) -> Path:
    """Fine-tune ``reference_dir`` with SB3's PPO or A2C and an :class:`LMActorCriticPolicy`,
    mapping an :class:`~agents.rl.config.RLConfig` onto SB3's arguments (module docstring).

    The budget is ``config.total_episodes`` episodes: training stops at the first rollout
    boundary past it (``metrics.csv`` records the episodes actually finished). Both aim at
    as many gradient steps per episode as :mod:`agents.rl.trainer`, on as many tokens, with Adam:

    - ``sb3-ppo``: each rollout holds about ``config.episodes_per_update`` episodes
      (``n_envs``, at most that many, envs times enough steps for their mean length),
      trained for ``config.update_epochs`` epochs of ``config.minibatches`` minibatches;
    - ``sb3-a2c``: A2C takes one gradient step per rollout, on the whole rollout, so its
      rollouts hold about ``episodes_per_update / minibatches`` episodes; Adam
      (``use_rms_prop=False``), not SB3's default RMSprop.

    But SB3 re-runs each step's whole context in the update, so a gradient step holds at
    most ``max_batch_steps`` steps (PPO minibatches, A2C rollouts), with gradient
    checkpointing: with minibatches of 8 episodes (about 1,250 steps of the shipped model's
    ``plus1`` task) a worker outgrew 14 GB and was killed. Under the cap SB3 takes more,
    smaller gradient steps per episode than :mod:`agents.rl.trainer`.

    Evaluation is :func:`agents.evaluation.accuracy.rl_evaluation`, as in :mod:`agents.rl.trainer`, every
    ``config.eval_every * config.episodes_per_update`` episodes (checked after each update)
    and at the end. The KL always goes in the reward (SB3 has no hook for a loss term),
    whatever ``config.kl_in`` says.

    The run directory is :mod:`agents.rl.bookkeeping`'s, as every backend's; its final policy is a
    model directory in ``checkpoint/`` (safetensors, what ``arith-rl eval`` and ``load_reference``
    load), and SB3's own ``sb3_model.zip`` beside it.

    Raises:
        ValueError: an unknown ``algo``, or settings SB3 cannot express (:data:`UNSUPPORTED`, a
            KL weighting that needs groups of episodes).
    """
    check_mapping()
    check_sb3_config(config, algo)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    reference, task = load_reference(reference_dir)
    if task.tokenizer != "characters":  # SB3's env and policy are the character ids'
        raise ValueError(
            f"the SB3 backend trains models of the character ids; {reference_dir} has its own tokenizer "
            "(train it with the agents or the TRL backend, docs/tokenizers.md)"
        )
    config = prepared_config(config, reference, task)  # the model's temperature, critical_auto's β
    del reference
    temperature = config.temperature
    rng = np.random.default_rng(config.seed)
    rules = get_task(task.task)
    mean_length = np.mean(
        [
            len(rules.target(rules.sample(rng, config.split, task.comfort_digits, "train"), 1)[0])
            for _ in range(256)
        ]
    )
    # No more envs than episodes per update: each env then ends about one episode per rollout.
    n_envs = min(n_envs, config.episodes_per_update)
    env = make_sb3_env(
        task.comfort_digits,
        config.split,
        n_envs=n_envs,
        seed=config.seed,
        reward_mode=config.reward_mode,
        problem_set="train",  # never a held-out problem, as in agents.rl
        task=task.task,
    )
    record = RunRecord(run, config, reference_dir, task, on_update)
    record.start()
    policy_kwargs = {name: getattr(config, name) for name in POLICY_ARGUMENTS}
    policy_kwargs.update(lm_path=str(reference_dir), temperature=temperature, gradient_checkpointing=True)
    common = {sb3_name: getattr(config, name) for name, sb3_name in ALGORITHM_ARGUMENTS.items()}
    common.update(device="cpu", policy_kwargs=policy_kwargs)
    if algo == "sb3-ppo":
        n_steps = int(np.ceil(config.episodes_per_update * mean_length / n_envs))
        model = KLPPO(
            LMActorCriticPolicy,
            env,
            n_steps=n_steps,
            batch_size=min(int(np.ceil(n_steps * n_envs / config.minibatches)), max_batch_steps),
            **{sb3_name: getattr(config, name) for name, sb3_name in PPO_ARGUMENTS.items()},
            **common,
        )
    else:
        n_steps = int(np.ceil(config.episodes_per_update / config.minibatches * mean_length / n_envs))
        n_steps = max(1, min(n_steps, max_batch_steps // n_envs))
        model = KLA2C(LMActorCriticPolicy, env, n_steps=n_steps, use_rms_prop=False, **common)

    def evaluate(final: bool = False) -> dict[str, float]:
        metrics = record.evaluate(model.policy.lm, final)
        model.policy.train()  # the whole policy (value head included) back in training mode
        return metrics

    every = config.eval_every * config.episodes_per_update
    callback = _EpisodeBudget(evaluate, record.log, every, config.total_episodes)
    # The callback stops at the budget; SB3 wants a step count: a bound with every episode at
    # the step limit, plus the envs' unfinished episodes and one rollout of spill-over.
    step_limit = EnvConfig.from_kwargs(task.comfort_digits, config.split, task=task.task).max_episode_steps
    most_steps = (config.total_episodes + n_envs + config.episodes_per_update) * step_limit
    model.learn(total_timesteps=most_steps, callback=callback)
    callback.log(evaluate=True, final=True)  # after the last update
    model.save(run / SB3_MODEL)
    info = replace(task, temperature=temperature, notes=f"RL fine-tuned with SB3 ({algo})")
    # Last, and atomic: the checkpoint marks the run finished.
    record.save(model.policy.lm, info, callback.rollouts, callback.episodes)
    record.close()
    env.close()
    return run

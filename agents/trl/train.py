"""A TRL GRPO run from an :class:`~agents.rl.config.RLConfig`, side by side with ``agents``' own.

``compare --algos trl-grpo`` trains with TRL's ``GRPOTrainer`` (through
:class:`~agents.trl.grpo.WeightedKLGRPOTrainer`) on the same reference, budget, groups and
held-out evaluation as the local ``grpo``: an update is one generation batch of
``episodes_per_update`` completions (P problems x G), split into ``minibatches`` optimizer
steps, ``update_epochs`` times; evaluations are ``agents.evaluation``'s, into ``metrics.csv``.
Settings TRL cannot express are refused (:func:`check_trl_config`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from transformers import PrinterCallback, TrainerCallback

from agents.lm.model import load_codec, load_reference
from agents.rl.algorithms import apply_algorithm, resolve
from agents.rl.bookkeeping import RunRecord, prepared_config
from agents.rl.config import RLConfig
from agents.rl.weighting import check_weighting
from agents.rundir import METRICS
from agents.trl.grpo import TRL_TASK_FIELDS, WeightedKLGRPOTrainer
from agents.trl.task import CriticalLabels, load_tokenizer, prepare_model, problem_dataset, task_reward
from arith_gym.rules import EnvConfig

LOSS_TYPES = {"seq_mean_token_mean": "grpo", "token_mean": "bnpo", "seq_mean_token_sum_norm": "dr_grpo"}
"""agents' loss aggregation -> TRL's ``loss_type`` that aggregates the same way."""
SCALE_REWARDS = {"grpo": "group", "dr_grpo": "none"}
"""agents' advantage estimator -> TRL's ``scale_rewards``."""
REQUIRED: dict[str, object] = {
    "kl_estimator": "k3",
    "kl_in": "loss",
    "pg_tokens": "all",
    "kl_cov_fraction": 0.0,
    "adaptive_kl_target": None,
    "dynamic_sampling": False,
    "policy_loss": None,
}
"""Settings a TRL run accepts only at these values (TRL's own estimator and loss)."""


def trl_config(config: RLConfig) -> RLConfig:
    """``config`` with the ``grpo`` algorithm's settings, as ``compare --algos trl-grpo`` runs it."""
    return apply_algorithm(config, "grpo")


def check_trl_config(config: RLConfig) -> None:
    """Raise ``ValueError`` for settings a TRL GRPO run cannot express."""
    for name, allowed in REQUIRED.items():
        if getattr(config, name) != allowed:
            raise ValueError(f"TRL runs cannot express {name}={getattr(config, name)!r} (only {allowed!r})")
    check_weighting(config.kl_weighting, TRL_TASK_FIELDS, "TRL backend")  # the run's env labels too
    pieces = resolve(config)
    if pieces.advantage not in SCALE_REWARDS or pieces.loss_agg not in LOSS_TYPES:
        raise ValueError(
            f"TRL runs take the advantages {sorted(SCALE_REWARDS)} and aggregations {sorted(LOSS_TYPES)}, "
            f"not {pieces.advantage!r} / {pieces.loss_agg!r}"
        )
    if config.episodes_per_update % (pieces.group_size * config.minibatches):
        raise ValueError("episodes_per_update must be a multiple of group_size x minibatches for TRL")


class _Bookkeeping(TrainerCallback):
    """A ``metrics.csv`` row after each update (``steps`` optimizer steps), evaluated as agents does."""

    def __init__(self, steps: int, config: RLConfig, evaluate: Callable, log_row: Callable) -> None:
        self.steps, self.config, self.evaluate, self.log_row = steps, config, evaluate, log_row
        self.started = time.perf_counter()
        self.update = self.episodes = 0

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.steps:
            return
        update = state.global_step // self.steps
        episodes = update * self.config.episodes_per_update
        self.update, self.episodes = update, episodes
        rewards = [row["reward"] for row in state.log_history if "reward" in row]
        row = {"update": update, "episodes": episodes, "update_seconds": time.perf_counter() - self.started}
        if rewards:
            row["train_accuracy"] = rewards[-1]
        finished = episodes >= self.config.total_episodes
        if update % self.config.eval_every == 0 or finished:
            row.update(self.evaluate(final=finished))
        self.log_row(row)
        self.started = time.perf_counter()


def train_trl_grpo(
    config: RLConfig,
    run_dir: str | Path,
    reference_dir: str | Path,
    on_update: Callable[[dict], None] | None = None,
    device: str = "cpu",
) -> Path:
    """Train ``reference_dir`` with TRL's GRPO and the weighted KL into ``run_dir`` (``metrics.csv``,
    ``config.json``, ``eval_set.json``, the final model in ``checkpoint/``, a model directory)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig

    check_trl_config(config)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    model, task = load_reference(reference_dir)
    codec = load_codec(reference_dir, model)  # None: the character ids
    config = prepared_config(config, model, task, codec)  # the model's temperature, critical_auto's β
    temperature = config.temperature
    (run / METRICS).unlink(missing_ok=True)  # a TRL run cannot resume mid-way: it starts again
    record = RunRecord(run, config, reference_dir, task, on_update, codec=codec)
    record.start()
    pieces = resolve(config)
    updates = config.num_updates
    steps_per_update = config.minibatches * config.update_epochs
    args = GRPOConfig(
        output_dir=str(run / "trl"),
        per_device_train_batch_size=config.episodes_per_update // config.minibatches,
        steps_per_generation=config.minibatches,
        num_iterations=config.update_epochs,
        num_generations=pieces.group_size,
        max_completion_length=EnvConfig.from_kwargs(
            task.comfort_digits, config.split, task=task.task
        ).max_episode_steps,
        max_steps=updates * steps_per_update,
        learning_rate=config.lr,
        lr_scheduler_type="constant",
        adam_epsilon=1e-5,
        max_grad_norm=config.max_grad_norm,
        beta=config.kl_coef,
        epsilon=config.clip_coef,
        epsilon_high=config.clip_coef if config.clip_coef_high is None else config.clip_coef_high,
        loss_type=LOSS_TYPES[pieces.loss_agg],
        scale_rewards=SCALE_REWARDS[pieces.advantage],
        entropy_coef=config.entropy_coef,
        temperature=temperature,
        use_cpu=device == "cpu",
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        seed=config.seed,
        disable_tqdm=True,
    )
    tokenizer = load_tokenizer(reference_dir)
    trainer = WeightedKLGRPOTrainer(
        model=prepare_model(model.to(device), codec, tokenizer.eos_token_id),
        reward_funcs=task_reward,
        train_dataset=problem_dataset(
            config.split, task.comfort_digits, config.total_episodes, config.seed, task.task
        ),
        args=args,
        processing_class=tokenizer,
        weighting_config=config,
        critical_labels=CriticalLabels(task.task, task.comfort_digits, config.split, codec),
    )

    def evaluate(final: bool = False) -> dict[str, float]:
        return record.evaluate(trainer.model, final)

    record.log({"update": 0, "episodes": 0, **evaluate()})
    trainer.remove_callback(PrinterCallback)  # metrics.csv is the record; no dict per step on stdout
    bookkeeping = _Bookkeeping(steps_per_update, config, evaluate, record.log)
    trainer.add_callback(bookkeeping)
    trainer.train()
    info = replace(task, temperature=temperature, notes="RL fine-tuned with TRL GRPO")
    # Last, and atomic: the checkpoint marks the run finished.
    record.save(trainer.model, info, bookkeeping.update, bookkeeping.episodes)
    record.close()
    return run

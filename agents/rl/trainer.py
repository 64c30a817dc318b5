"""The RL fine-tuning loop: rollout, update, evaluate, log, checkpoint, resume.

A run directory (:mod:`agents.rundir`) holds ``config.json``, ``metrics.csv`` (one row per
update), TensorBoard events under ``tb/``, and ``checkpoint/`` (the policy's LM as a
``save_pretrained`` directory plus the value head, optimizer, random generator and KL
coefficient in ``trainer.pt``). The problems of update ``u`` are drawn with a seed derived
from ``(seed, u)`` and actions from a generator whose state is checkpointed, so
``resume=True`` continues exactly where an interrupted run stopped (same curve on the same
CPU). Ctrl-C finishes the update, saves a
checkpoint and stops (:class:`agents.rundir.InterruptAtBoundary`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from agents.kl import NonFiniteError
from agents.lm.episodes import make_vector_env
from agents.lm.model import DEFAULT_REFERENCE, load_codec, load_reference
from agents.rl.algorithms import check_config
from agents.rl.bookkeeping import (
    CONFIG_FILE,
    EVAL_STREAM,
    REFERENCE_FILE,
    RunRecord,
    evaluate_lm,
    evaluation_set,
    prepared_config,
    with_model_temperature,
)
from agents.rl.config import RLConfig
from agents.rl.policy import LMPolicy
from agents.rl.sampling import derived_seed, sample_batch
from agents.rl.update import KLController, policy_update
from agents.rundir import (
    InterruptAtBoundary,
    checkpoint_dir,
    load_trainer_state,
    open_run,
    trim_metrics,
)

ROLLOUT_STREAM = 0
__all__ = [
    "CONFIG_FILE",
    "EVAL_STREAM",
    "REFERENCE_FILE",
    "Trainer",
    "derived_seed",
    "evaluate_lm",
    "evaluation_set",
    "open_trainer",
    "prepared_config",
    "train",
]


class Trainer:
    """Holds the policy, the frozen reference, the optimizer and the run's bookkeeping."""

    def __init__(self, config: RLConfig, reference_dir: str | Path, run_dir: str | Path, device: str = "cpu"):
        self.run_dir = Path(run_dir)
        self.reference_dir = Path(reference_dir)
        reference, self.task = load_reference(self.reference_dir)
        self.codec = load_codec(self.reference_dir, reference)  # None: the character ids
        check_config(with_model_temperature(config, self.task))  # unknown names fail before any work
        config = prepared_config(config, reference, self.task, self.codec)
        self.config = config
        self.pieces = check_config(config)
        torch.manual_seed(config.seed)  # the value head's initialisation
        vocab_size = self.task.vocab_size if self.codec is None else self.codec.vocab_size
        policy = LMPolicy(copy.deepcopy(reference), config.temperature, config.value_hidden, vocab_size)
        self.policy = policy.to(device)
        self.reference = reference.to(device).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.kl = KLController(config.kl_coef, config.adaptive_kl_target, config.adaptive_kl_horizon)
        # Training never draws a held-out problem; the evaluation set holds only those.
        self.env = make_vector_env(
            config.episodes_per_update,
            self.task.comfort_digits,
            config.split,
            self.task.task,
            self.codec,
            reward_mode=config.reward_mode,
            problem_set="train",
        )
        self.record = RunRecord(self.run_dir, config, self.reference_dir, self.task, codec=self.codec)
        self.update = 0
        self.episodes = 0
        self._saved_update = 0  # the update of the last checkpoint written or loaded

    @property
    def eval_set(self):
        return self.record.eval_set

    @property
    def last_evaluation(self) -> dict[str, float] | None:
        return self.record.last_evaluation

    # ----------------------------------------------------------------- checkpoints

    def save(self) -> Path:
        """Write ``checkpoint/`` atomically: a crash mid-write keeps the previous one."""
        info = replace(self.task, temperature=self.config.temperature, notes="RL fine-tuned")
        state = {
            "value_head": self.policy.value_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "kl_coef": self.kl.coef,
            "update": self.update,
            "episodes": self.episodes,
            "config": asdict(self.config),
        }
        saved = self.record.save(self.policy.lm, info, self.update, self.episodes, state)
        self._saved_update = self.update
        return saved

    def load(self, state: dict | None = None) -> None:
        """Restore the state saved by :meth:`save` (``--resume``); ``state``: its ``trainer.pt``, if read."""
        state = load_trainer_state(self.run_dir) if state is None else state
        saved = RLConfig.from_dict(state["config"], "the checkpoint's settings")
        if saved != self.config:
            changed = sorted(k for k, v in asdict(saved).items() if asdict(self.config)[k] != v)
            raise ValueError(f"--resume with settings that differ from the checkpoint's: {changed}")
        lm, _ = load_reference(checkpoint_dir(self.run_dir))
        self.policy.lm.load_state_dict(lm.state_dict())
        self.policy.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.kl.coef = state["kl_coef"]
        self.update, self.episodes = state["update"], state["episodes"]
        self._saved_update = self.update
        self.record.resume_episodes = self.episodes
        # Rows logged after the checkpoint (a run killed between two) are logged again.
        trim_metrics(self.run_dir, "update", self.update)

    # ----------------------------------------------------------------- the loop

    def evaluate(self, final: bool = False) -> dict[str, float]:
        """Accuracy on the held-out set: its first ``eval_episodes`` problems, or all if ``final``."""
        return self.record.evaluate(self.policy.lm, final)

    def train_one_update(self) -> dict[str, float]:
        config = self.config
        started = time.perf_counter()
        rollout, sampling = sample_batch(
            self.policy,
            self.reference,
            self.env,
            self.generator,
            seed=derived_seed(config.seed, ROLLOUT_STREAM, self.update),
            group_size=self.pieces.group_size,
            dynamic_sampling=config.dynamic_sampling,
            max_rounds=config.max_sampling_rounds,
            certainty_temperature=config.certainty_temperature,
            certainty_kind=config.certainty_kind,
        )
        try:
            stats = policy_update(self.policy, self.optimizer, rollout, config, self.kl, self.generator)
        except NonFiniteError as err:
            saved = (
                f"the checkpoint of update {self._saved_update} is intact"
                if self._saved_update
                else "no checkpoint yet"
            )
            raise NonFiniteError(f"update {self.update + 1}: {err}; stopped, {saved}") from None
        self.update += 1
        self.episodes += sampling.sampled_episodes
        stats.update(
            update=self.update,
            episodes=self.episodes,
            **sampling.as_row(),
            tokens=rollout.num_tokens,
            rollout_seconds=rollout.timings["total"],
            update_seconds=time.perf_counter() - started,
        )
        return stats

    def run(
        self,
        progress: bool = True,
        max_updates: int | None = None,
        on_update: Callable[[dict[str, float]], None] | None = None,
    ) -> Path:
        """Train until ``config.total_episodes`` episodes are spent (or ``max_updates`` more updates);
        returns the run dir.

        ``on_update`` receives each update's logged row (e.g. to drive an outside progress bar).
        """
        self.record.on_update = on_update
        self.record.start()
        total = self.config.total_episodes
        last = None if max_updates is None else self.update + max_updates
        # The bar counts episodes: dynamic sampling spends a varying number per update.
        bar = tqdm(
            total=total, initial=min(self.episodes, total), desc="train", unit="episode", disable=not progress
        )
        self.policy.train()
        if self.update == 0:
            self._log({"update": 0, "episodes": 0, **self.evaluate()}, bar)
        try:
            with InterruptAtBoundary() as interrupt:
                while self.episodes < total and self.update != last:
                    before = self.episodes
                    row = self.train_one_update()
                    finished = self.episodes >= total
                    if self.update % self.config.eval_every == 0 or finished:
                        row.update(self.evaluate(final=finished))
                    self._log(row, bar)
                    bar.update(min(self.episodes, total) - min(before, total))
                    due = self.update % self.config.checkpoint_every == 0 or finished or self.update == last
                    if due or interrupt.requested:
                        self.save()
                    if interrupt.requested:
                        bar.write(f"interrupted: saved at update {self.update}; continue with --resume")
                        raise KeyboardInterrupt
        finally:
            bar.close()
            self.record.close()
        return self.run_dir

    def _log(self, row: dict[str, float], bar) -> None:
        self.record.log(row)
        shown = {"acc": row.get("train_accuracy"), "kl": row.get("kl"), "ent": row.get("entropy")}
        shown[f"{self.config.split}"] = row.get(f"{self.config.split}_sampled")
        bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items() if v is not None})


def train(
    config: RLConfig,
    run_dir: str | Path,
    reference_dir: str | Path = DEFAULT_REFERENCE,
    resume: bool | None = False,
    progress: bool = True,
    device: str = "cpu",
) -> Path:
    """Fine-tune ``reference_dir`` with ``config`` into ``run_dir`` (see the module docstring).

    ``resume``: True continues the run in ``run_dir``, False starts one (refusing a directory
    that holds a run), None does whichever applies (:func:`agents.rundir.open_run`).
    """
    return open_trainer(config, run_dir, reference_dir, resume, device).run(progress)


def open_trainer(
    config: RLConfig,
    run_dir: str | Path,
    reference_dir: str | Path = DEFAULT_REFERENCE,
    resume: bool | None = False,
    device: str = "cpu",
) -> Trainer:
    """A :class:`Trainer` for ``run_dir`` after the one resume rule, restored if it resumes."""
    # The saved state is read (and checked) before any model is loaded.
    state = load_trainer_state(run_dir) if open_run(run_dir, resume, REFERENCE_FILE) else None
    trainer = Trainer(config, reference_dir, run_dir, device)
    if state is not None:
        trainer.load(state)
    return trainer

"""The RL fine-tuning loop: rollout, update, evaluate, log, checkpoint, resume.

A run directory holds ``config.json``, ``metrics.csv`` (one row per update), TensorBoard
events under ``tb/``, and ``checkpoint/`` (the policy's LM as a ``save_pretrained``
directory plus the value head, optimizer, random generator and KL coefficient). The
problems of update ``u`` are drawn with a seed derived from ``(seed, u)`` and actions from a
generator whose state is checkpointed, so ``resume=True`` continues exactly where an
interrupted run stopped (same curve on the same CPU). Ctrl-C saves a checkpoint first.
"""

from __future__ import annotations

import copy
import csv
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from agents.checkpoint import find_dir, write_dir
from agents.config import RLConfig
from agents.episodes import make_vector_env
from agents.evaluate import rl_evaluation
from agents.model import DEFAULT_REFERENCE, TaskInfo, load_reference, save_reference
from agents.policy import LMPolicy
from agents.ppo import KLController, ppo_update
from agents.rollout import collect_rollout

CHECKPOINT = "checkpoint"


ROLLOUT_STREAM, EVAL_STREAM = 0, 1


def derived_seed(seed: int, *keys: int) -> int:
    """An independent seed for the stream ``keys`` of a run seeded ``seed`` (e.g. one per update)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


class Trainer:
    """Holds the policy, the frozen reference, the optimizer and the run's bookkeeping."""

    def __init__(self, config: RLConfig, reference_dir: str | Path, run_dir: str | Path, device: str = "cpu"):
        self.run_dir = Path(run_dir)
        self.reference_dir = Path(reference_dir)
        reference, self.task = load_reference(self.reference_dir)
        if config.temperature is None:
            config = config.with_overrides(temperature=self.task.temperature)
        self.config = config
        torch.manual_seed(config.seed)  # the value head's initialisation
        self.policy = LMPolicy(copy.deepcopy(reference), config.temperature, config.value_hidden).to(device)
        self.reference = reference.to(device).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.kl = KLController(config.kl_coef, config.adaptive_kl_target, config.adaptive_kl_horizon)
        self.env = make_vector_env(
            config.episodes_per_update, self.task.comfort_digits, config.split, reward_mode=config.reward_mode
        )
        self.update = 0
        self.episodes = 0

    # ----------------------------------------------------------------- checkpoints

    def save(self) -> Path:
        """Write ``checkpoint/`` atomically: a crash mid-write keeps the previous one."""
        info = TaskInfo(self.task.comfort_digits, self.config.temperature, self.task.size, "RL fine-tuned")
        with write_dir(self.run_dir / CHECKPOINT) as tmp:
            save_reference(self.policy.lm, tmp, info)
            torch.save(
                {
                    "value_head": self.policy.value_head.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "generator": self.generator.get_state(),
                    "kl_coef": self.kl.coef,
                    "update": self.update,
                    "episodes": self.episodes,
                    "config": asdict(self.config),
                },
                tmp / "trainer.pt",
            )
        return self.run_dir / CHECKPOINT

    def load(self) -> None:
        """Restore the state saved by :meth:`save` (``--resume``)."""
        path = find_dir(self.run_dir / CHECKPOINT)
        if not (path / "trainer.pt").is_file():
            raise FileNotFoundError(f"nothing to resume: {path}/trainer.pt does not exist")
        state = torch.load(path / "trainer.pt", weights_only=False, map_location="cpu")
        saved = RLConfig(**{**state["config"], "value_hidden": tuple(state["config"]["value_hidden"])})
        if saved != self.config:
            changed = sorted(k for k, v in asdict(saved).items() if asdict(self.config)[k] != v)
            raise ValueError(f"--resume with settings that differ from the checkpoint's: {changed}")
        lm, _ = load_reference(path)
        self.policy.lm.load_state_dict(lm.state_dict())
        self.policy.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.kl.coef = state["kl_coef"]
        self.update, self.episodes = state["update"], state["episodes"]

    # ----------------------------------------------------------------- the loop

    def evaluate(self) -> dict[str, float]:
        self.policy.eval()
        metrics = rl_evaluation(
            self.policy.lm,
            self.task.comfort_digits,
            self.config.split,
            self.config.temperature,
            self.config.eval_episodes,
            seed=derived_seed(self.config.seed, EVAL_STREAM),
            greedy=self.config.eval_greedy,
        )
        self.policy.train()
        return metrics

    def train_one_update(self) -> dict[str, float]:
        config = self.config
        started = time.perf_counter()
        rollout = collect_rollout(
            self.policy,
            self.reference,
            self.env,
            self.generator,
            seed=derived_seed(config.seed, ROLLOUT_STREAM, self.update),
            certainty_temperature=config.certainty_temperature,
            certainty_kind=config.certainty_kind,
        )
        stats = ppo_update(self.policy, self.optimizer, rollout, config, self.kl, self.generator)
        self.update += 1
        self.episodes += config.episodes_per_update
        stats.update(
            update=self.update,
            episodes=self.episodes,
            train_accuracy=rollout.accuracy(),
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
        """Train until ``config.total_episodes`` (or ``max_updates`` more updates); returns the run dir.

        ``on_update`` receives each update's logged row (e.g. to drive an outside progress bar).
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(self.config.to_json())
        (self.run_dir / "reference.txt").write_text(str(self.reference_dir.resolve()) + "\n")
        writer = SummaryWriter(str(self.run_dir / "tb"))
        last = (
            self.config.num_updates
            if max_updates is None
            else min(self.config.num_updates, self.update + max_updates)
        )
        bar = tqdm(total=self.config.num_updates, initial=self.update, desc="train", disable=not progress)
        self.policy.train()
        if self.update == 0:
            self._log({"update": 0, "episodes": 0, **self.evaluate()}, writer, bar)
        try:
            while self.update < last:
                row = self.train_one_update()
                if self.update % self.config.eval_every == 0 or self.update == self.config.num_updates:
                    row.update(self.evaluate())
                self._log(row, writer, bar)
                bar.update(1)
                if on_update is not None:
                    on_update(row)
                if self.update % self.config.checkpoint_every == 0 or self.update == last:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            bar.write(f"interrupted: checkpoint saved at update {self.update}; continue with --resume")
            raise
        finally:
            bar.close()
            writer.close()
        return self.run_dir

    def _log(self, row: dict[str, float], writer: SummaryWriter, bar) -> None:
        for key, value in row.items():
            if key not in ("update", "episodes"):
                writer.add_scalar(key, value, row["episodes"])
        append_row(self.run_dir / "metrics.csv", row)
        shown = {"acc": row.get("train_accuracy"), "kl": row.get("kl"), "ent": row.get("entropy")}
        shown[f"{self.config.split}"] = row.get(f"{self.config.split}_sampled")
        bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items() if v is not None})


def append_row(path: Path, row: dict[str, float]) -> None:
    """Append to a CSV whose columns may grow (evaluation rows carry more keys)."""
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    columns = list(dict.fromkeys([*(rows[0].keys() if rows else []), *row]))
    if rows and columns == list(rows[0].keys()):
        with path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=columns).writerow(row)
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows([*rows, row])


def train(
    config: RLConfig,
    run_dir: str | Path,
    reference_dir: str | Path = DEFAULT_REFERENCE,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> Path:
    """Fine-tune ``reference_dir`` with ``config`` into ``run_dir`` (see the module docstring)."""
    trainer = Trainer(config, reference_dir, run_dir, device)
    if resume:
        trainer.load()
    elif (Path(run_dir) / CHECKPOINT).exists():
        raise FileExistsError(
            f"{run_dir} already holds a run: pass resume=True (--resume) or another directory"
        )
    return trainer.run(progress)


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as floats (empty cells dropped)."""
    with (Path(run_dir) / "metrics.csv").open() as handle:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)
        ]


__all__ = ["Trainer", "append_row", "read_metrics", "train", "derived_seed"]

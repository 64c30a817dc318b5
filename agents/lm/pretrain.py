"""Supervised pre-training of a reference model on freshly generated scratchpad examples.

Every batch is new problems drawn from a seeded ``numpy`` generator: operand digit counts
uniform in 1..N for each side independently (so unequal lengths appear), optionally with a
small share of (N+1)-digit "glimpse" problems. The loss covers the target text only: the
prompt's operands are random digits that no model can predict, and training on them would
only add noise to the gradient.

Training is AdamW with linear warm-up and cosine decay, gradient clipping, periodic greedy
evaluation, and checkpoints (weights, optimizer, scheduler, data generator) from which
``resume=True`` continues bit for bit on the same machine.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm.auto import tqdm
from transformers import GPT2LMHeadModel, get_cosine_schedule_with_warmup

from agents.lm.batches import make_batch
from agents.lm.bpe import ARCHITECTURES, build_causal_lm, train_bpe
from agents.lm.decoding import GREEDY
from agents.lm.episodes import play_episodes
from agents.lm.model import TaskInfo, build_model, load_reference, save_reference
from agents.rundir import (
    CHECKPOINT,
    METRICS,
    InterruptAtBoundary,
    append_row,
    checkpoint_dir,
    load_trainer_state,
    open_run,
    save_trainer_state,
    trim_metrics,
    write_dir,
)
from agents.settings import check_field_types, settings_from_mapping
from arith_gym.codec import TokenizerCodec
from arith_gym.operands import problems_with_digits, sample_operands, split_for
from arith_gym.task import get_task, heldout_draws

UNSCORED_CHOICES: dict[str, frozenset[str] | None] = {
    "none": frozenset(),
    "all": None,
    "commas": frozenset({"comma"}),
}
"""``--unscored-critical`` choices: the critical-token kinds they leave out of the loss (None: every
kind of the task: addition's commas and digits, multiply's lines, a sum's pluses)."""
CONFIG_FILE = "pretrain_config.json"


BPE_FILE = "bpe_tokenizer.json"
"""A BPE run's tokenizer, trained once at its start (``--resume`` reads it back)."""
BEFORE_TOKENIZERS = {"task": "Addition", "tokenizer": "characters", "bpe_vocab": 384, "architecture": "gpt2"}
"""What a checkpoint's settings written before tasks and tokenizers existed mean."""


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pre-training run (saved beside its checkpoints)."""

    comfort_digits: int = 3
    """N: the task's difficulty in pre-training (addition: operands of 1..N digits)."""
    task: str = "Addition"
    """A registered task (:mod:`arith_gym.task`): ``Addition``, ``Multiply``, ``MultiSum``, ..."""
    size: str = "tiny"
    tokenizer: str = "characters"
    """``characters`` (a GPT-2 of the character ids) or ``bpe``: a byte-level BPE trained on the
    task's own text (:func:`agents.lm.bpe.train_bpe`) and a model of ``architecture``."""
    bpe_vocab: int = 384
    """The BPE's vocabulary: the 256 bytes, the pad, then merges."""
    architecture: str = "gpt2"
    """``gpt2`` for the characters; ``llama`` or ``qwen2`` (built from a config) for a BPE."""
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    glimpse_share: float = 0.0
    """Share of training problems drawn from ``plus1`` instead of the comfort zone."""
    unscored_critical: str = "none"
    """Which structural critical tokens of glimpse problems to leave out of the loss: ``none``,
    ``all``, or ``commas``. With ``commas`` the model sees longer operand lists in its input and
    learns everything after them (digit N+1 copies included), but is never taught whether a list
    goes on past N digits - the decision the paper's models are unsure of. ``all`` also leaves the
    digits past N untaught, so the model cannot copy them (RL must then learn a new copy rule)."""
    max_position_offset: int = 0
    """Each example's position ids start at a random offset in 0..this, so that position
    embeddings past the longest comfort-zone example get trained too."""
    temperature: float = 1.0
    """RL sampling temperature recorded in the model directory."""
    seed: int = 0
    eval_every: int = 500
    eval_problems: int = 128
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        check_field_types(self)
        positive = (
            "comfort_digits",
            "steps",
            "batch_size",
            "eval_every",
            "eval_problems",
            "checkpoint_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.glimpse_share <= 1.0:
            raise ValueError(f"glimpse_share must be in [0, 1], got {self.glimpse_share}")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError("lr and temperature must be positive")
        if self.unscored_critical not in UNSCORED_CHOICES:
            raise ValueError(
                f"unscored_critical must be one of {tuple(UNSCORED_CHOICES)}, got {self.unscored_critical!r}"
            )
        get_task(self.task)  # an unknown task is named
        if (self.tokenizer, self.architecture == "gpt2") not in (("characters", True), ("bpe", False)):
            raise ValueError(
                f"tokenizer {self.tokenizer!r} with architecture {self.architecture!r}: the characters "
                f"train a gpt2, a bpe one of {ARCHITECTURES}"
            )
        if self.architecture not in ("gpt2", *ARCHITECTURES):
            raise ValueError(
                f"architecture must be gpt2 or one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.warmup_steps < 0 or self.max_position_offset < 0:
            raise ValueError("warmup_steps and max_position_offset must be non-negative")

    @classmethod
    def from_dict(cls, values: dict, source: str = "pre-training settings") -> PretrainConfig:
        """A PretrainConfig from a JSON object (e.g. ``pretrain_config.json``); errors name ``source``."""
        if isinstance(values, dict) and isinstance(values.get("unscored_critical"), bool):
            # Written before the setting took a kind of critical token.
            values = {**values, "unscored_critical": "all" if values["unscored_critical"] else "none"}
        return settings_from_mapping(cls, values, source)


def sample_training_problem(rng: np.random.Generator, config: PretrainConfig) -> tuple[int, ...]:
    """One problem of the pre-training mix (addition draws exactly what it always drew)."""
    split = "plus1" if config.glimpse_share > 0 and rng.random() < config.glimpse_share else "comfort"
    if config.task == "Addition":
        return sample_operands(rng, split, config.comfort_digits)
    return get_task(config.task).sample(rng, split, config.comfort_digits, "all")


def next_batch(
    rng: np.random.Generator, config: PretrainConfig, codec: TokenizerCodec | None = None
) -> dict[str, torch.Tensor]:
    problems = [sample_training_problem(rng, config) for _ in range(config.batch_size)]
    offsets = None
    if config.max_position_offset > 0:
        offsets = rng.integers(0, config.max_position_offset + 1, size=config.batch_size)
    kinds = UNSCORED_CHOICES[config.unscored_critical]
    unscored = config.comfort_digits if kinds is None or kinds else None
    return make_batch(problems, offsets, unscored, kinds, config.task, codec)


def make_optimizer(model: torch.nn.Module, config: PretrainConfig):
    # No weight decay on biases, LayerNorm gains and embeddings (nanoGPT's rule: decay 2-D matmul weights).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n and "wte" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wpe" not in n and "wte" not in n)
    ]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    return optimizer, scheduler


def save_state(
    out_dir: Path, model, optimizer, scheduler, rng: np.random.Generator, step: int, config, tokenizer=None
) -> None:
    """Write a resumable checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    with write_dir(out_dir / CHECKPOINT) as tmp:
        save_reference(model, tmp, task_info(config), tokenizer)
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng.bit_generator.state,
            "step": step,
            "config": asdict(config),
        }
        save_trainer_state(tmp, state)


def load_state(out_dir: Path, config: PretrainConfig, device: str | torch.device = "cpu"):
    """Model, optimizer, scheduler, data generator and step of the checkpoint in ``out_dir``."""
    saved = load_trainer_state(out_dir)
    # Written before tasks (addition) and before tokenizers (the characters).
    saved["config"] = {**BEFORE_TOKENIZERS, **saved["config"]}
    if saved["config"] != asdict(config):
        changed = {k for k in saved["config"] if saved["config"][k] != asdict(config).get(k)}
        raise ValueError(f"--resume with different settings than the checkpoint: {sorted(changed)}")
    # The checkpoint is a reference model directory: loaded (and checked) as one.
    model = load_reference(checkpoint_dir(out_dir))[0].to(device)
    optimizer, scheduler = make_optimizer(model, config)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    rng = np.random.default_rng()
    rng.bit_generator.state = saved["rng"]
    return model, optimizer, scheduler, rng, saved["step"]


def pretrain(
    config: PretrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    evaluate_fn=None,
    device: str | torch.device = "cpu",
    stop_after: int | None = None,
) -> GPT2LMHeadModel:
    """Train a reference model and save it to ``out_dir`` (see the module docstring).

    ``evaluate_fn(model, config) -> dict`` is called every ``eval_every`` steps and at the
    end; its numbers go to the progress bar and ``metrics.csv``. Returns the trained model.

    ``stop_after``: stop after this many steps of this call (before ``config.steps``), with a
    checkpoint saved, as an interruption would; ``resume=True`` then continues the run. The
    reference model directory is written only when the run completes.
    """
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after must be at least 1, got {stop_after}")
    out = Path(out_dir)
    if resume and (out / "trainer_state").is_dir() and not (out / CHECKPOINT).exists():
        raise FileNotFoundError(
            f"{out} holds a checkpoint of arith-gym < 0.2 (trainer_state/): move trainer_state/model/* "
            "and trainer_state/trainer.pt into checkpoint/ to resume it"
        )
    resume = open_run(out, resume, CONFIG_FILE)  # creates ``out`` for a new run
    torch.manual_seed(config.seed)
    bpe = _bpe_tokenizer(out, config, resume)
    codec = None if bpe is None else TokenizerCodec(bpe)
    if resume:
        model, optimizer, scheduler, rng, step = load_state(out, config, device)
        trim_metrics(out, "step", step)
    else:
        if bpe is None:
            model = build_model(config.size, seed=config.seed, vocab_size=get_task(config.task).vocab_size)
        else:
            model = build_causal_lm(config.architecture, config.size, bpe.get_vocab_size(), config.seed)
        model = model.to(device)
        optimizer, scheduler = make_optimizer(model, config)
        rng, step = np.random.default_rng(config.seed), 0
        (out / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2) + "\n")
    model.train()
    metrics_path = out / METRICS
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="pretrain", dynamic_ncols=True)
    started, tokens = time.perf_counter(), 0
    last = config.steps if stop_after is None else min(config.steps, step + stop_after)
    with InterruptAtBoundary() as interrupt:
        while step < last:
            batch = {k: v.to(device) for k, v in next_batch(rng, config, codec).items()}
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            tokens += int(batch["attention_mask"].sum())
            row = {"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
            if evaluate_fn is not None and (step % config.eval_every == 0 or step == config.steps):
                model.eval()
                row.update(evaluate_fn(model, config) if codec is None else evaluate_fn(model, config, codec))
                model.train()
                append_row(metrics_path, row)
            bar.set_postfix(
                loss=f"{row['loss']:.4f}", tok_s=f"{tokens / (time.perf_counter() - started):.0f}"
            )
            bar.update(1)
            if step % config.checkpoint_every == 0 or step == last or interrupt.requested:
                save_state(out, model, optimizer, scheduler, rng, step, config, bpe)
            if interrupt.requested:
                bar.close()
                print(f"interrupted: saved at step {step}; continue with --resume", file=sys.stderr)
                raise KeyboardInterrupt
    bar.close()
    model.eval()
    if step < config.steps:
        return model
    save_reference(model.cpu(), out, task_info(config), bpe)
    return model.to(device)


def _bpe_tokenizer(out: Path, config: PretrainConfig, resume: bool) -> Tokenizer | None:
    """The run's BPE (None for the characters): trained at its start and kept in ``out``."""
    if config.tokenizer != "bpe":
        return None
    path = out / BPE_FILE
    if resume and path.is_file():
        return Tokenizer.from_file(str(path))
    tokenizer = train_bpe(config.task, config.comfort_digits, config.bpe_vocab, seed=config.seed)
    tokenizer.save(str(path))
    return tokenizer


def task_info(config: PretrainConfig) -> TaskInfo:
    """What the model directory records of the run (its N, temperature, size, task and tokenizer)."""
    tokenizer = "characters" if config.tokenizer == "characters" else "model"
    return TaskInfo(
        config.comfort_digits, config.temperature, config.size, task=config.task, tokenizer=tokenizer
    )


def progress_evaluator(problems: int | None = None, seed: int = 0):
    """An ``evaluate_fn`` for ``pretrain``: greedy comfort accuracy and sampled N+1 accuracy."""

    def evaluate(model: GPT2LMHeadModel, config: PretrainConfig, codec=None) -> dict[str, float]:
        count = problems or config.eval_problems
        rng = np.random.default_rng(seed)
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        n = config.comfort_digits
        if config.task != "Addition":  # any other task: its own held-out draws (addition keeps its own)
            task = get_task(config.task)
            comfort, harder = heldout_draws(task, n, count, seed)
            greedy, _ = play_episodes(
                model, comfort, n, "comfort", GREEDY, generator, task=task, tokenizer=codec
            )
            sampled, _ = play_episodes(
                model, harder, n, "plus1", config.temperature, generator, task=task, tokenizer=codec
            )
            return {"comfort_greedy": float(greedy.mean()), "plus1_sampled": float(sampled.mean())}
        comfort = problems_with_digits(rng, n, "varying", count)
        harder = problems_with_digits(rng, n + 1, "varying", count)
        greedy, _ = play_episodes(model, comfort, n, "comfort", GREEDY, generator, tokenizer=codec)
        sampled, _ = play_episodes(
            model, harder, n, split_for(n + 1, n), config.temperature, generator, tokenizer=codec
        )
        return {"comfort_greedy": float(greedy.mean()), "plus1_sampled": float(sampled.mean())}

    return evaluate

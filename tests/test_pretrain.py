"""Pre-training (agents/lm/pretrain.py): batches, learning, exact resume, settings checks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

from agents.lm.batches import IGNORE_INDEX, make_batch
from agents.lm.model import load_reference
from agents.lm.pretrain import PretrainConfig, next_batch, pretrain
from agents.rundir import CHECKPOINT, load_trainer_state
from arith_gym.scratchpad import critical_tokens, prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, encode

# Short runs of a micro model on 1-digit problems; no evaluation (evaluate_fn=None).
MICRO = dict(size="micro", comfort_digits=1, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=1000)


def test_make_batch_masks_prompt_and_pads_right():
    problems = [(7, 5), (57, 305), (0, 0)]
    batch = make_batch(problems)
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    lengths = [len(prompt_text(a, b)) + len(target_text(a, b)) for a, b in problems]
    assert ids.shape == labels.shape == attention.shape == (3, max(lengths))
    for row, (a, b) in enumerate(problems):
        prompt, target = encode(prompt_text(a, b)), encode(target_text(a, b))
        end = len(prompt) + len(target)
        assert ids[row, :end].tolist() == [*prompt, *target]
        assert (ids[row, end:] == PAD_ID).all()  # right padding
        assert attention[row, :end].eq(1).all() and attention[row, end:].eq(0).all()
        # The loss sees the target only: no prompt token, no padding.
        assert (labels[row, : len(prompt)] == IGNORE_INDEX).all()
        assert labels[row, len(prompt) : end].tolist() == target.tolist()
        assert (labels[row, end:] == IGNORE_INDEX).all()
    assert batch["position_ids"][0].tolist() == list(range(max(lengths)))


def test_make_batch_position_offsets():
    batch = make_batch([(1, 2), (3, 4)], offsets=np.array([0, 5]))
    width = batch["input_ids"].shape[1]
    assert batch["position_ids"][0].tolist() == list(range(width))
    assert batch["position_ids"][1].tolist() == list(range(5, 5 + width))


def test_next_batch_is_seeded_and_stays_in_the_comfort_zone():
    config = PretrainConfig(**MICRO)
    a, b = next_batch(np.random.default_rng(1), config), next_batch(np.random.default_rng(1), config)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["input_ids"].shape[0] == config.batch_size
    # 1-digit operands: no example is longer than 9+9 with its scratchpad.
    assert a["input_ids"].shape[1] <= len(prompt_text(9, 9)) + len(target_text(9, 9))
    other = next_batch(np.random.default_rng(2), config)
    assert not torch.equal(a["input_ids"][:, :12], other["input_ids"][:, :12])


def _batch_loss(model, batch) -> float:
    with torch.no_grad():
        return model(**batch).loss.item()


def test_training_lowers_the_loss(tmp_path):
    config = PretrainConfig(**{**MICRO, "batch_size": 16, "steps": 40, "checkpoint_every": 40})
    fixed = next_batch(np.random.default_rng(123), config)
    from agents.lm.model import build_model

    before = _batch_loss(build_model("micro", seed=config.seed).eval(), fixed)
    model = pretrain(config, tmp_path, progress=False)
    after = _batch_loss(model, fixed)
    assert after < before - 1.0, (before, after)  # about 3.8 -> 2.0 nats per token
    # The finished run is a reference model directory for this task.
    loaded, task = load_reference(tmp_path)
    assert (task.comfort_digits, task.size, task.temperature) == (1, "micro", 1.0)
    assert _batch_loss(loaded, fixed) == pytest.approx(after, abs=1e-6)
    assert json.loads((tmp_path / "pretrain_config.json").read_text()) == dataclasses.asdict(config)


def test_metrics_rows_come_from_the_evaluator(tmp_path):
    config = PretrainConfig(**{**MICRO, "steps": 4, "eval_every": 2, "checkpoint_every": 4})
    calls = []

    def evaluate(model, cfg):
        assert not model.training
        calls.append(cfg)
        return {"score": float(len(calls))}

    pretrain(config, tmp_path, progress=False, evaluate_fn=evaluate)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,score"
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "4"]
    assert [line.split(",")[-1] for line in lines[1:]] == ["1.0", "2.0"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = PretrainConfig(**{**MICRO, "steps": 6, "checkpoint_every": 3})
    out = tmp_path_factory.mktemp("straight")
    return config, pretrain(config, out, progress=False)


def test_resume_continues_bit_for_bit(uninterrupted, tmp_path):
    config, straight = uninterrupted
    stopped = pretrain(config, tmp_path, progress=False, stop_after=3)
    # Stopped early: a checkpoint, but no finished reference model yet.
    assert (tmp_path / CHECKPOINT / "trainer.pt").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    assert not all(
        torch.equal(p, q) for p, q in zip(stopped.parameters(), straight.parameters(), strict=True)
    )
    resumed = pretrain(config, tmp_path, resume=True, progress=False)
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert (tmp_path / "model.safetensors").is_file()


def test_stop_after_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="stop_after"):
        pretrain(PretrainConfig(**{**MICRO, "steps": 2}), tmp_path, progress=False, stop_after=0)


def test_checkpoint_holds_the_model_at_its_step(uninterrupted, tmp_path):
    config, _ = uninterrupted
    stopped = pretrain(config, tmp_path, progress=False, stop_after=2)
    saved = GPT2LMHeadModel.from_pretrained(tmp_path / CHECKPOINT, local_files_only=True)
    for p, q in zip(stopped.parameters(), saved.parameters(), strict=True):
        assert torch.equal(p, q)
    assert load_trainer_state(tmp_path)["step"] == 2


def test_resume_with_other_settings_is_refused(uninterrupted, tmp_path):
    config, _ = uninterrupted
    pretrain(config, tmp_path, progress=False, stop_after=3)
    with pytest.raises(ValueError, match=r"different settings.*\['lr'\]"):
        pretrain(dataclasses.replace(config, lr=1e-4), tmp_path, resume=True, progress=False)


def test_resume_without_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        pretrain(PretrainConfig(**MICRO), tmp_path, resume=True, progress=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"comfort_digits": 0},
        {"steps": 0},
        {"batch_size": 0},
        {"checkpoint_every": 0},
        {"glimpse_share": 1.5},
        {"lr": 0.0},
        {"temperature": -1.0},
        {"warmup_steps": -1},
        {"max_position_offset": -2},
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        PretrainConfig(**bad)


def test_config_from_dict_rejects_unknown_names():
    assert PretrainConfig.from_dict({"steps": 5}).steps == 5
    with pytest.raises(ValueError, match="pre-training settings: unknown settings \\['stepz'\\]"):
        PretrainConfig.from_dict({"stepz": 5})


def test_unscored_critical_drops_exactly_the_critical_labels():
    problems = [(12345, 678), (12, 3)]
    plain = make_batch(problems)["labels"]
    batch = make_batch(problems, unscored_critical_of=3)
    prompt_length = len(prompt_text(12345, 678))
    critical = {prompt_length + t.position for t in critical_tokens(12345, 678, 3)}
    dropped = {int(i) for i in torch.nonzero(plain[0] != batch["labels"][0]).flatten()}
    assert dropped == critical and all(batch["labels"][0, i] == IGNORE_INDEX for i in critical)
    assert torch.equal(plain[1], batch["labels"][1])  # a comfort-zone problem has no critical token


def test_unscored_commas_keeps_the_digits_past_n_scored():
    problems = [(12345, 678)]
    plain = make_batch(problems)["labels"]
    batch = make_batch(problems, unscored_critical_of=3, unscored_kinds=frozenset({"comma"}))
    prompt_length = len(prompt_text(12345, 678))
    commas = {prompt_length + t.position for t in critical_tokens(12345, 678, 3) if t.kind == "comma"}
    dropped = {int(i) for i in torch.nonzero(plain[0] != batch["labels"][0]).flatten()}
    assert dropped == commas and len(commas) > 0


def test_unscored_critical_setting_reads_old_booleans_and_rejects_unknown_kinds():
    assert PretrainConfig.from_dict({"unscored_critical": True}).unscored_critical == "all"
    assert PretrainConfig.from_dict({"unscored_critical": False}).unscored_critical == "none"
    with pytest.raises(ValueError, match="unscored_critical must be one of"):
        PretrainConfig(unscored_critical="digits")


def test_a_checkpoint_of_the_old_layout_says_how_to_resume_it(tmp_path):
    (tmp_path / "trainer_state" / "model").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"arith-gym < 0.2 \(trainer_state/\): move"):
        pretrain(PretrainConfig(**{**MICRO, "steps": 2}), tmp_path, resume=True, progress=False)

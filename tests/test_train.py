"""The RL fine-tuning loop (agents/rl/trainer.py): determinism, exact resume, run directories."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from agents.lm.model import load_reference
from agents.rl.config import RLConfig
from agents.rl.trainer import Trainer, derived_seed, train
from agents.rundir import CHECKPOINT, read_metrics

# 4 updates of 4 episodes of a micro model; evaluation at update 0 and at the end.
CONFIG = RLConfig(
    algo="ppo",
    lr=1e-3,
    episodes_per_update=4,
    total_episodes=16,
    update_epochs=2,
    minibatches=2,
    kl_coef=1.0,
    eval_every=4,
    eval_episodes=4,
    checkpoint_every=1,
    value_hidden=(16,),
    seed=0,
)
TIMING_COLUMNS = ("rollout_seconds", "update_seconds")


def _rows(run_dir) -> list[dict[str, str]]:
    """metrics.csv rows without wall-clock timings (the only thing allowed to differ)."""
    with (run_dir / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def straight_run(micro_reference_dir, tmp_path_factory):
    """The four updates in one go."""
    run_dir = tmp_path_factory.mktemp("straight")
    trainer = Trainer(CONFIG, micro_reference_dir, run_dir)
    trainer.run(progress=False)
    return trainer, run_dir


def test_run_directory_and_metrics(straight_run, micro_reference_dir):
    trainer, run_dir = straight_run
    assert trainer.update == 4 and trainer.episodes == 16
    assert trainer.config.temperature == 1.0  # taken from the reference's arith_gym.json
    assert RLConfig(**{**json.loads((run_dir / "config.json").read_text()), "value_hidden": (16,)}) == (
        trainer.config
    )
    assert (run_dir / "reference.txt").read_text().strip() == str(micro_reference_dir.resolve())
    assert any((run_dir / "tb").iterdir())
    rows = read_metrics(run_dir)
    assert [row["update"] for row in rows] == [0, 1, 2, 3, 4]
    assert [row["episodes"] for row in rows] == [0, 4, 8, 12, 16]
    assert "plus1_sampled" in rows[0] and "plus1_sampled" in rows[4]  # evaluations
    assert "plus1_sampled" not in rows[1]
    for row in rows[1:]:
        assert row["first_ratio_max_error"] < 1e-4
        assert 0.0 <= row["train_accuracy"] <= 1.0
    # The checkpoint is a reference model directory of the final policy.
    lm, task = load_reference(run_dir / CHECKPOINT)
    assert task.comfort_digits == 1 and task.notes == "RL fine-tuned"
    _assert_same_weights(lm.state_dict(), trainer.policy.lm.state_dict())


def test_training_changes_the_policy_not_the_reference(straight_run, micro_reference_dir):
    trainer, _ = straight_run
    original, _ = load_reference(micro_reference_dir)
    _assert_same_weights(trainer.reference.state_dict(), original.state_dict())
    assert not all(
        torch.equal(p, q) for p, q in zip(trainer.policy.lm.parameters(), original.parameters(), strict=True)
    )


def test_same_seed_same_run(straight_run, micro_reference_dir, tmp_path):
    first, first_dir = straight_run
    second = Trainer(CONFIG, micro_reference_dir, tmp_path)
    second.run(progress=False)
    assert _rows(tmp_path) == _rows(first_dir)
    _assert_same_weights(_state(second), _state(first))


def test_resume_equals_uninterrupted(straight_run, micro_reference_dir, tmp_path):
    straight, straight_dir = straight_run
    interrupted = Trainer(CONFIG, micro_reference_dir, tmp_path)
    interrupted.run(progress=False, max_updates=2)
    assert interrupted.update == 2
    assert [row["update"] for row in read_metrics(tmp_path)] == [0, 1, 2]

    resumed = Trainer(CONFIG, micro_reference_dir, tmp_path)
    resumed.load()
    assert resumed.update == 2 and resumed.episodes == 8
    resumed.run(progress=False)
    assert resumed.update == 4
    _assert_same_weights(_state(resumed), _state(straight))
    assert resumed.kl.coef == straight.kl.coef
    assert torch.equal(resumed.generator.get_state(), straight.generator.get_state())
    assert _rows(tmp_path) == _rows(straight_dir)


def test_resume_with_other_settings_is_refused(straight_run, micro_reference_dir):
    _, run_dir = straight_run
    other = Trainer(CONFIG.with_overrides(lr=5e-4), micro_reference_dir, run_dir)
    with pytest.raises(ValueError, match=r"differ from the checkpoint's: \['lr'\]"):
        other.load()


def test_resume_without_checkpoint(micro_reference_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(CONFIG, micro_reference_dir, tmp_path).load()


def test_train_refuses_to_overwrite_a_run(straight_run, micro_reference_dir):
    _, run_dir = straight_run
    before = (run_dir / "metrics.csv").read_text()
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(CONFIG, run_dir, micro_reference_dir, progress=False)
    assert (run_dir / "metrics.csv").read_text() == before


def test_derived_seeds_are_distinct_and_stable():
    seeds = {derived_seed(0, 0, update) for update in range(100)}
    assert len(seeds) == 100
    assert derived_seed(0, 0, 5) == derived_seed(0, 0, 5) != derived_seed(1, 0, 5)


def _interrupted_then_resumed(config, reference, run_dir, monkeypatch, send_sigint_when):
    """Train ``config``, send a real SIGINT when ``send_sigint_when(trainer)`` says, then resume."""
    trainer = Trainer(config, reference, run_dir)
    send_sigint_when(trainer, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(progress=False)
    monkeypatch.undo()
    resumed = train(config, run_dir, reference, resume=True, progress=False)
    return trainer, resumed


def _sigint_during_rollout_of_update_2(trainer, monkeypatch):
    import agents.rl.trainer as train_module

    real, calls = train_module.sample_batch, []

    def rollout(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the rollout of update 2, before its first action is drawn
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "sample_batch", rollout)


def _sigint_between_minibatches_of_update_2(trainer, monkeypatch):
    real, calls = trainer.optimizer.step, []

    def step(*args, **kwargs):
        calls.append(1)
        result = real(*args, **kwargs)
        if len(calls) == 5:  # update 2's first of 4 minibatch steps has been applied
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(trainer.optimizer, "step", step)


@pytest.mark.parametrize(
    "when", [_sigint_during_rollout_of_update_2, _sigint_between_minibatches_of_update_2]
)
def test_ctrl_c_finishes_the_update_saves_and_resumes_exactly(
    when, straight_run, micro_reference_dir, tmp_path, monkeypatch
):
    straight, straight_dir = straight_run
    config = CONFIG.with_overrides(checkpoint_every=100)  # the only save is the interrupt's
    interrupted, _ = _interrupted_then_resumed(config, micro_reference_dir, tmp_path, monkeypatch, when)
    assert interrupted.update == 2  # the interrupted update ran to its end
    resumed = Trainer(config, micro_reference_dir, tmp_path)
    resumed.load()
    assert resumed.update == 4
    _assert_same_weights(_state(resumed), _state(straight))
    assert _rows(tmp_path) == _rows(straight_dir)


KILL_SCRIPT = """
import json, os, signal, sys
from agents.rl.config import RLConfig
from agents.rl.trainer import open_trainer
config = RLConfig.from_dict(json.loads(sys.argv[1]))
trainer = open_trainer(config, sys.argv[2], sys.argv[3], resume=None)
kill_at = int(sys.argv[4])
def kill(row):
    if row["update"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
trainer.run(progress=False, on_update=kill)
"""


@pytest.mark.parametrize("kill_at", [2, 4])  # before the first checkpoint (3); after it, before the last
def test_kill_9_then_resume_equals_an_uninterrupted_run(kill_at, straight_run, micro_reference_dir, tmp_path):
    straight, straight_dir = straight_run
    config = CONFIG.with_overrides(checkpoint_every=3)
    argv = [sys.executable, "-c", KILL_SCRIPT, config.to_json(), str(tmp_path), str(micro_reference_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the thread count of this process (conftest)
    killed = subprocess.run([*argv, str(kill_at)], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_metrics(tmp_path)[-1]["update"] == kill_at  # logged, then killed
    train(config, tmp_path, micro_reference_dir, resume=None, progress=False)  # what compare does
    resumed = Trainer(config, micro_reference_dir, tmp_path)
    resumed.load()
    _assert_same_weights(_state(resumed), _state(straight))
    assert _rows(tmp_path) == _rows(straight_dir)
    assert _tensorboard_steps(tmp_path) == _tensorboard_steps(straight_dir)


def _tensorboard_steps(run_dir) -> list[int]:
    """The episodes at which TensorBoard holds a ``loss`` scalar, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return [event.step for event in events.Scalars("loss")]


def test_resume_drops_the_rows_logged_after_the_checkpoint(straight_run, micro_reference_dir, tmp_path):
    """A run killed between two checkpoints logged rows that its resumed run logs again."""
    _, straight_dir = straight_run
    Trainer(CONFIG, micro_reference_dir, tmp_path).run(progress=False, max_updates=2)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["update", "episodes"]
    with (tmp_path / "metrics.csv").open("a") as handle:  # update 3, logged, never checkpointed
        handle.write("3,12" + "," * (len(header) - 2) + "\n")
    train(CONFIG, tmp_path, micro_reference_dir, resume=True, progress=False)
    assert _rows(tmp_path) == _rows(straight_dir)

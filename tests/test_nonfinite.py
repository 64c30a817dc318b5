"""A NaN never reaches the weights or a checkpoint: the update stops first, with one line."""

from __future__ import annotations

import math

import pytest
import torch

from agents.cli import main
from agents.kl import NonFiniteError
from agents.lm.model import load_reference
from agents.rl.config import RLConfig
from agents.rl.trainer import open_trainer
from agents.rl.weighting import KL_WEIGHTINGS, register_kl_weighting
from agents.rundir import checkpoint_dir, load_trainer_state

CALLS = {"n": 0}
if "nan_at_third" not in KL_WEIGHTINGS:

    @register_kl_weighting("nan_at_third", method=False)
    def nan_at_third(batch, config):
        """The standard KL, but NaN on its third call (a plug-in with a bug)."""
        CALLS["n"] += 1
        return torch.full(batch.mask.shape, math.nan if CALLS["n"] == 3 else 1.0)


CONFIG = RLConfig(
    episodes_per_update=4,
    total_episodes=20,
    eval_every=10,
    eval_episodes=2,
    eval_greedy=False,
    value_hidden=(8,),
    checkpoint_every=1,
    temperature=1.0,
    kl_weighting="nan_at_third",
)


def test_a_nan_weighting_stops_update_3_before_any_step_and_update_2_survives(micro_reference_dir, tmp_path):
    CALLS["n"] = 0
    trainer = open_trainer(CONFIG, tmp_path, micro_reference_dir)
    with pytest.raises(NonFiniteError) as stopped:
        trainer.run(progress=False)
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("update 3: ")
    assert "KL weighting 'nan_at_third' returned non-finite weights" in message
    assert "the checkpoint of update 2 is intact" in message
    assert load_trainer_state(tmp_path)["update"] == 2
    model, _ = load_reference(checkpoint_dir(tmp_path))  # finite weights, loadable
    assert all(torch.isfinite(p).all() for p in model.parameters())
    resumed = open_trainer(CONFIG, tmp_path, micro_reference_dir, resume=True)  # the bug no longer fires
    assert resumed.update == 2
    resumed.run(progress=False)
    assert resumed.episodes == 20


def test_a_non_finite_loss_term_is_named_and_nothing_is_stepped(micro_reference_dir, tmp_path, monkeypatch):
    from agents.rl import update as update_module

    trainer = open_trainer(CONFIG.with_overrides(kl_weighting="uniform"), tmp_path, micro_reference_dir)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    real = update_module.policy_forward

    def values_nan(*args, **kwargs):  # a critic gone wrong: the value loss is NaN
        log_probs, values = real(*args, **kwargs)
        return log_probs, values * math.nan

    monkeypatch.setattr(update_module, "policy_forward", values_nan)
    with pytest.raises(
        NonFiniteError, match=r"^update 1: non-finite value loss \(NaN or inf\) before the optimizer"
    ):
        trainer.train_one_update()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters(), strict=True))


@pytest.mark.parametrize("name", ["kl_coef", "entropy_coef", "value_coef", "clip_coef", "kl_cov_coef", "lr"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_settings_are_refused_by_name(name, value, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--set", f"{name}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arith-rl train: error: ") and "\n" not in err
    assert f"{name} must be a finite number, got" in err
    assert not (tmp_path / "run").exists()

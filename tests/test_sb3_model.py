"""An SB3 run ends with a safetensors model directory, like every backend (agents/sb3/train.py)."""

from __future__ import annotations

import torch

from agents.cli import main
from agents.lm.model import load_reference
from agents.rl.config import RLConfig
from agents.rundir import CHECKPOINT
from agents.sb3.kl_penalty import KLPPO
from agents.sb3.train import train_sb3

CONFIG = RLConfig(
    episodes_per_update=4, total_episodes=4, eval_every=1, eval_episodes=2, value_hidden=(16,), lr=1e-3
)


def test_an_sb3_run_saves_its_lm_as_a_model_directory_that_eval_loads(micro_reference_dir, tmp_path, capsys):
    run = train_sb3(CONFIG, tmp_path / "run", micro_reference_dir, "sb3-ppo", n_envs=4)
    lm, task = load_reference(run / CHECKPOINT)  # safetensors: nothing is unpickled
    assert task.comfort_digits == 1 and task.notes == "RL fine-tuned with SB3 (sb3-ppo)"
    assert not list((run / CHECKPOINT).glob("*.pt")) and not list((run / CHECKPOINT).glob("*.bin"))
    # The same weights as the policy in the SB3 zip (our own zip: safe to load here).
    policy_lm = KLPPO.load(run / "sb3_model.zip", device="cpu").policy.lm.state_dict()
    saved = lm.state_dict()
    assert saved.keys() == policy_lm.keys()
    assert all(torch.equal(saved[name], policy_lm[name]) for name in saved)
    reference, _ = load_reference(micro_reference_dir)
    assert not all(torch.equal(saved[n], w) for n, w in reference.state_dict().items())  # it trained
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert f"{run / CHECKPOINT}: N=1" in capsys.readouterr().out

"""Every registered KL weighting under every backend: one tiny update each, or a one-line refusal.

The contract (agents/rl/weighting.py, agents/backends/): a weighting declares what it reads, a
backend what it gives; a run whose weighting needs more refuses at start, naming both, and every
other combination trains, its weights computed by the same registered object.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_RL

from agents.backends import backend_for, backend_name
from agents.lm.model import load_reference
from agents.rl.config import RLConfig
from agents.rl.registry import load_plugin
from agents.rl.weighting import KL_WEIGHTINGS, register_kl_weighting
from agents.rundir import read_metrics

# TRL 1.16 still calls transformers' deprecated `gradient_checkpointing` names itself.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`[a-z_]*gradient_checkpointing[a-z_]*` is deprecated:FutureWarning"
)
ROOT = Path(__file__).resolve().parent.parent
load_plugin(ROOT / "examples" / "plugins" / "entropy_lift.py")  # a plug-in weighting, benchmarked alike

CALLS: dict[str, int] = {}
if "spy" not in KL_WEIGHTINGS:

    @register_kl_weighting("spy", needs=("certainty",), method=False)
    def spy(batch, config):
        """Counts its calls per backend; the standard KL otherwise."""
        CALLS[batch.backend] = CALLS.get(batch.backend, 0) + 1
        assert batch.certainty.shape == batch.mask.shape
        return torch.ones(())


TINY = RLConfig(**TINY_RL)
ALGOS = ("ppo", "grpo", "sb3-ppo", "trl-grpo")
CASES = [(algo, name) for algo in ALGOS for name in (*KL_WEIGHTINGS.names(), "critical_auto")]


def _config(algo: str, name: str) -> RLConfig:
    backend = backend_for(algo)
    base = TINY.with_overrides(group_size=2) if algo in ("grpo", "trl-grpo") else TINY
    if name == "critical_auto":
        return backend.job_config(base, algo, "critical_auto")
    return backend.job_config(base, algo, None).with_overrides(kl_weighting=name)


def _provides(algo: str, config: RLConfig) -> frozenset[str]:
    if algo == "sb3-ppo":
        from agents.sb3.kl_penalty import SB3_BATCH_FIELDS

        return SB3_BATCH_FIELDS
    if algo == "trl-grpo":
        from agents.trl.grpo import TRL_TASK_FIELDS

        return TRL_TASK_FIELDS  # the backend replays each completion in the env for its labels
    from agents.rl.algorithms import batch_fields, resolve

    return batch_fields(config, resolve(config))


@pytest.mark.parametrize(("algo", "name"), CASES, ids=[f"{a}-{n}" for a, n in CASES])
def test_every_weighting_trains_or_refuses_in_one_line_under_every_backend(
    algo, name, micro_reference_dir, tmp_path
):
    config = _config(algo, name)
    backend = backend_for(algo)
    needs = KL_WEIGHTINGS[config.kl_weighting].needs
    lacking = needs - _provides(algo, config)
    if lacking:
        with pytest.raises(ValueError) as refused:
            backend.check(config, algo)
        message = str(refused.value)
        assert "\n" not in message
        assert f"KL weighting {config.kl_weighting!r} needs what the" in message
        assert backend_name(algo).lower() in message.lower() and all(field in message for field in lacking)
        return
    backend.check(config, algo)
    label = {"agents": "agents", "sb3": "SB3", "trl": "TRL"}[backend_name(algo)]
    before = CALLS.get(label, 0)
    run = backend.train(config, tmp_path / "run", micro_reference_dir, algo)
    rows = read_metrics(run)
    assert rows[-1]["episodes"] >= config.total_episodes and "plus1_sampled" in rows[-1]
    model, task = load_reference(run / "checkpoint")  # every backend ends with a model directory
    assert task.comfort_digits == 1 and model.config.vocab_size == 41
    if name == "spy":  # the registered object itself computed the weights
        assert CALLS.get(label, 0) > before


def test_the_plugin_weighting_trains_under_trl_from_the_command_line(micro_reference_dir, tmp_path):
    from agents.cli import main

    out = tmp_path / "trl"
    code = main(
        [
            "train",
            "--plugin",
            str(ROOT / "examples" / "plugins" / "entropy_lift.py"),
            "--algo",
            "trl-grpo",
            "--method",
            "entropy_lift",
            "--ref",
            str(micro_reference_dir),
            "--out",
            str(out),
            "--set",
            "total_episodes=16",
            "--set",
            "episodes_per_update=16",
            "--set",
            "eval_episodes=2",
            "--set",
            "final_eval_episodes=2",
            "--set",
            "final_comfort_episodes=2",
            "--set",
            "eval_greedy=false",
        ]
    )
    assert code == 0
    config = RLConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert config.kl_weighting == "entropy_lift"
    assert read_metrics(out)[-1]["episodes"] == 16

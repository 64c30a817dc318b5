"""The examples of docs/architecture.md run as written: a plug-in weighting and a plug-in backend."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from agents.backends import BACKENDS, backend_for
from agents.rl.config import RLConfig
from agents.rl.weighting import KL_WEIGHTINGS, TokenBatch, compute_weights
from agents.rundir import read_metrics

PAGE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def _run_block(index: int) -> dict:
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"{PAGE.name} block {index}", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_page_holds_the_two_examples():
    assert len(BLOCKS) == 2
    assert all(len(block.strip().splitlines()) <= 40 for block in BLOCKS)


def test_the_weighting_example_registers_and_weighs_tokens():
    if "surprise_lift" not in KL_WEIGHTINGS:
        _run_block(0)
    assert KL_WEIGHTINGS["surprise_lift"].needs == frozenset({"logp"})
    logp = torch.log(torch.tensor([[0.9, 0.01, 0.8, 0.7, 0.9, 0.95, 0.6, 0.99, 0.5, 0.9]]))
    batch = TokenBatch(
        "agents",
        mask=torch.ones_like(logp, dtype=torch.bool),
        actions=torch.zeros_like(logp).long(),
        logp=logp,
    )
    weights = compute_weights("surprise_lift", batch, RLConfig(kl_weighting="surprise_lift"))
    assert weights.tolist() == [[1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]  # 10 %: the 0.01 token


def test_the_backend_example_records_the_reference_in_the_shared_run_layout(micro_reference_dir, tmp_path):
    if "reference-only" not in BACKENDS:
        _run_block(1)
    backend = backend_for("reference-only")
    config = RLConfig(total_episodes=8, eval_episodes=2, final_eval_episodes=4, final_comfort_episodes=4)
    run = backend.train(config, tmp_path / "run", micro_reference_dir, "reference-only")
    rows = read_metrics(run)
    assert [row["update"] for row in rows] == [0, 1] and rows[-1]["plus1_problems"] == 4
    for name in ("config.json", "reference.txt", "eval_set.json", "checkpoint/model.safetensors"):
        assert (run / name).is_file(), name

"""Shared fixtures for the ``agents`` tests: micro models, a saved micro reference, small envs.

The agents tests use the ``micro`` model size (2 layers x 32 wide) on comfort_digits=1
problems so that the whole suite runs in seconds on a CPU. Torch is imported lazily so that
the ``arith_gym`` tests (numpy only) do not pay for it.
"""

from __future__ import annotations

import os

import pytest

MICRO_DIGITS = 1


def _limit_torch_threads() -> None:
    # Micro models gain nothing from intra-op threads, and on a busy machine extra threads
    # slow torch down many times over. Respect an explicit OMP_NUM_THREADS.
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def micro_reference_dir(tmp_path_factory):
    """A randomly initialised micro reference model saved for comfort_digits=1, T=1."""
    _limit_torch_threads()
    from agents.lm.model import TaskInfo, build_model, save_reference

    out = tmp_path_factory.mktemp("micro-ref")
    model = build_model("micro", seed=0).eval()
    return save_reference(model, out, TaskInfo(comfort_digits=MICRO_DIGITS, temperature=1.0, size="micro"))


@pytest.fixture
def micro_model():
    """A fresh micro GPT-2 (seed 0) in eval mode."""
    _limit_torch_threads()
    from agents.lm.model import build_model

    return build_model("micro", seed=0).eval()


TINY_RL = {
    "episodes_per_update": 4,
    "total_episodes": 4,
    "minibatches": 1,
    "eval_every": 1,
    "eval_episodes": 2,
    "final_eval_episodes": 4,
    "final_comfort_episodes": 2,
    "eval_greedy": False,
    "value_hidden": (8,),
    "kl_coef": 1.0,
    "certainty_temperature": 1.0,
    "checkpoint_every": 1,
}
"""One tiny update of a run: the RL settings the backend tests train with."""


@pytest.fixture
def tiny_rl():
    """An ``RLConfig`` of :data:`TINY_RL` (with ``group_size`` set per algorithm by the test)."""
    from agents.rl.config import RLConfig

    return RLConfig(**TINY_RL)


def tiny_llama(vocab_size: int):
    """A 2-layer, 32-wide Llama built from a config (seed 0): any causal LM, no download."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def addition_bpe():
    """A byte-level BPE of 400 tokens trained on addition's own text at N = 3 (about a second)."""
    from agents.lm.bpe import train_bpe

    return train_bpe("Addition", 3, vocab_size=400, problems=300)


QUICK_CRITICALITY = (
    *("--problems", "1", "--group-size", "2", "--samples", "2", "--max-samples", "2"),
    *("--epsilon", "0.3", "--arm-floor", "0.3", "--after-deviation", "0.1", "--resamples", "20"),
)
"""``arith-rl criticality`` settings that take seconds on a micro model: only arms it gives 30 %,
few positions after a deviation (``--resamples`` last, so a test can replace it)."""


def quick_criticality(model_dir, out, seeds: str = "0") -> list[str]:
    """The ``arith-rl criticality`` argv of a seconds-long run of ``model_dir`` into ``out``."""
    return ["criticality", str(model_dir), "--out", str(out), "--seeds", seeds, *QUICK_CRITICALITY]

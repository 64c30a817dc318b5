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

"""Stable-Baselines3's PPO and A2C (:mod:`agents.sb3`) as a backend."""

from __future__ import annotations

from pathlib import Path

from agents.backends.restarting import RestartingBackend
from agents.rl.algorithms import algorithm_and_method
from agents.rl.config import RLConfig
from agents.sb3.train import SB3_ALGOS, SB3_SETTINGS, check_sb3_config, train_sb3


class SB3Backend(RestartingBackend):
    """``sb3-ppo`` and ``sb3-a2c``, at :data:`~agents.sb3.train.SB3_SETTINGS` in a comparison; an
    interrupted run starts again."""

    label = "SB3"

    def algorithms(self) -> tuple[str, ...]:
        return SB3_ALGOS

    def job_config(self, base: RLConfig, algo: str, method: str) -> RLConfig:
        return algorithm_and_method(base, None, method).with_overrides(**SB3_SETTINGS)

    def check(self, config: RLConfig, algo: str) -> None:
        check_sb3_config(config, algo)

    def train_from_scratch(
        self, config, run_dir: Path, reference: Path, algo: str, on_update, device
    ) -> None:
        train_sb3(config, run_dir, reference, algo, on_update=on_update)  # SB3 runs stay on the CPU


BACKEND = SB3Backend()

"""TRL's GRPOTrainer with the weighted KL (:mod:`agents.trl`, an optional extra) as a backend."""

from __future__ import annotations

from pathlib import Path

from agents.backends.restarting import RestartingBackend
from agents.rl.algorithms import algorithm_and_method
from agents.rl.config import RLConfig


class TRLBackend(RestartingBackend):
    """``trl-grpo``: TRL's GRPO at the ``grpo`` algorithm's settings; an interrupted run starts again.
    TRL is imported only when a ``trl-grpo`` run is checked or trained."""

    label = "TRL"

    def algorithms(self) -> tuple[str, ...]:
        return ("trl-grpo",)

    def job_config(self, base: RLConfig, algo: str, method: str) -> RLConfig:
        return algorithm_and_method(base, "grpo", method)

    def check(self, config: RLConfig, algo: str) -> None:
        from agents.trl.train import check_trl_config

        check_trl_config(config)

    def train_from_scratch(
        self, config, run_dir: Path, reference: Path, algo: str, on_update, device
    ) -> None:
        from agents.trl.train import train_trl_grpo

        train_trl_grpo(config, run_dir, reference, on_update, device)


BACKEND = TRLBackend()

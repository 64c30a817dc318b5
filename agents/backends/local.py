"""The package's own trainer (:mod:`agents.rl.trainer`) as a backend: every registered algorithm."""

from __future__ import annotations

from pathlib import Path

from agents.backends import UpdateCallback
from agents.rl.algorithms import ALGORITHMS, algorithm_and_method, check_config
from agents.rl.config import RLConfig
from agents.rl.trainer import open_trainer


class LocalBackend:
    """``agents.rl``: PPO, A2C, the GRPO family and every plug-in algorithm; runs resume exactly."""

    resumable = True

    def algorithms(self) -> tuple[str, ...]:
        return ALGORITHMS.names()

    def job_config(self, base: RLConfig, algo: str, method: str) -> RLConfig:
        return algorithm_and_method(base, algo, method)

    def check(self, config: RLConfig, algo: str) -> None:
        check_config(config)

    def train(
        self,
        config: RLConfig,
        run_dir: Path,
        reference: Path,
        algo: str,
        on_update: UpdateCallback | None = None,
        device: str = "cpu",
        resume: bool | None = None,
    ) -> Path:
        trainer = open_trainer(config, run_dir, reference, resume=resume, device=device)
        if trainer.episodes < trainer.config.total_episodes:
            trainer.run(progress=False, on_update=on_update)
        return Path(run_dir)


BACKEND = LocalBackend()

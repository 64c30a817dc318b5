"""A run directory's bookkeeping, written once for every backend (agents, SB3, TRL, plug-ins).

Every run of the package, whatever trains it, leaves the same record::

    RUN/
      config.json       the resolved settings (RLConfig, temperature and calibrated β included)
      reference.txt     the reference model it fine-tunes
      eval_set.json     the held-out problems it is evaluated on (the same for every run of a comparison)
      metrics.csv       one row per update; evaluation rows carry the accuracies
      tb/               the same rows as TensorBoard scalars (steps: episodes)
      fingerprint.json  what decides its result (written and checked by :mod:`agents.backends.runs`)
      .lock             held by the process writing the run
      checkpoint/       a model directory (safetensors, ``load_reference`` loads it), ``progress.json``
                        (update, episodes) and, for a backend that resumes, its ``trainer.pt``

:class:`RunRecord` writes it: :meth:`~RunRecord.start` the files that say what the run is,
:meth:`~RunRecord.evaluate` on the shared held-out set, :meth:`~RunRecord.log` a metrics row,
:meth:`~RunRecord.save` an atomic checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from transformers import PreTrainedModel

from agents.evaluation.accuracy import rl_evaluation
from agents.evaluation.heldout import EVAL_SET_FILE, EvalSet, heldout_eval_set
from agents.lm.model import TaskInfo, save_reference
from agents.rl.config import RLConfig, eval_set_sizes
from agents.rl.sampling import derived_seed
from agents.rl.weighting import KL_WEIGHTINGS, TrainingProblems
from agents.run_identity import write_progress
from agents.rundir import CHECKPOINT, METRICS, append_row, checkpoint_dir, save_trainer_state, write_dir
from arith_gym.codec import Codec

CONFIG_FILE = "config.json"
REFERENCE_FILE = "reference.txt"
"""Which reference model a run fine-tunes; only an RL run writes it (a model directory also
holds a ``config.json``: its model's)."""
EVAL_STREAM = 1
"""The random stream of a run's evaluations (:func:`~agents.rl.sampling.derived_seed`)."""


def with_model_temperature(config: RLConfig, task: TaskInfo) -> RLConfig:
    """``config`` with its sampling temperature set: its own, else the one recorded with the model."""
    return config if config.temperature is not None else config.with_overrides(temperature=task.temperature)


def prepared_config(
    config: RLConfig, reference: PreTrainedModel, task: TaskInfo, codec: Codec | None = None
) -> RLConfig:
    """``config`` as a run trains it, whatever its backend: the model's temperature where it sets
    none, then what its KL weighting calibrates once on the reference
    (:meth:`~agents.rl.weighting.KLWeighting.prepare`: ``critical_auto``'s β); ``codec``: the
    reference's tokenizer (None: the character ids)."""
    config = with_model_temperature(config, task)
    problems = TrainingProblems(task.comfort_digits, config.split, task.task, codec)
    return KL_WEIGHTINGS[config.kl_weighting].prepare(reference, config, problems)


def evaluation_set(config: RLConfig, task: TaskInfo) -> EvalSet:
    """The held-out evaluation set of a run with ``config`` on a reference trained for ``task`` (the
    same for every run of a comparison)."""
    harder, comfort = eval_set_sizes(config)
    return heldout_eval_set(
        task.comfort_digits, config.split, harder, comfort, config.eval_set_seed, task.task
    )


def evaluate_lm(
    lm: PreTrainedModel,
    comfort_digits: int,
    config: RLConfig,
    eval_set: EvalSet,
    final: bool = False,
    codec: Codec | None = None,
) -> dict[str, float]:
    """``lm`` on ``eval_set``: its first ``eval_episodes`` problems per split, or all if ``final``
    (sampled at ``config.temperature``, which must be set, with the run's evaluation seed)."""
    training = lm.training
    lm.eval()
    metrics = rl_evaluation(
        lm,
        comfort_digits,
        config.split,
        config.temperature,
        None if final else config.eval_episodes,
        seed=derived_seed(config.seed, EVAL_STREAM),
        greedy=config.eval_greedy,
        eval_set=eval_set,
        # p(right) at the critical labels: on the intermediate prefix even in the final evaluation
        # (the same problems at every point of critical.csv; the pass over all 400 cost 21 s of the
        # default comparison's 15 minutes)
        critical_episodes=config.eval_episodes,
        tokenizer=codec,
    )
    lm.train(training)
    return metrics


class RunRecord:
    """The bookkeeping of one run directory (see the module docstring).

    Args:
        run_dir: the run directory.
        config: the run's resolved settings (temperature set, calibration done).
        reference_dir: the reference model it fine-tunes.
        task: what the reference was trained for (its task and N).
        on_update: called with each logged row of an update (not the initial evaluation's).
        resume_episodes: the run continues from its checkpoint at this many episodes: TensorBoard
            drops what was logged after it.
        codec: the reference's tokenizer (:func:`agents.lm.model.load_codec`; None: the characters).
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: RLConfig,
        reference_dir: str | Path,
        task: TaskInfo,
        on_update: Callable[[dict[str, float]], None] | None = None,
        resume_episodes: int | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.reference_dir = Path(reference_dir)
        self.comfort_digits = task.comfort_digits
        self.eval_set = evaluation_set(config, task)
        self.codec = codec
        self.on_update = on_update
        self.resume_episodes = resume_episodes
        self.last_evaluation: dict[str, float] | None = None
        self._writer: SummaryWriter | None = None

    def start(self) -> None:
        """Write what the run is: ``config.json``, ``reference.txt``, ``eval_set.json``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CONFIG_FILE).write_text(self.config.to_json())
        (self.run_dir / REFERENCE_FILE).write_text(str(self.reference_dir.resolve()) + "\n")
        self.eval_set.save(self.run_dir / EVAL_SET_FILE)
        # TensorBoard's steps are episodes: a resumed run drops the events logged after its checkpoint.
        purge = None if self.resume_episodes is None else self.resume_episodes + 1
        self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def evaluate(self, lm: PreTrainedModel, final: bool = False) -> dict[str, float]:
        """``lm`` on the run's held-out set: the first ``eval_episodes`` problems, or all if ``final``."""
        self.last_evaluation = evaluate_lm(
            lm, self.comfort_digits, self.config, self.eval_set, final, self.codec
        )
        return self.last_evaluation

    def log(self, row: dict[str, float]) -> None:
        """Append ``row`` (``update``, ``episodes``, anything else) to ``metrics.csv`` and TensorBoard."""
        if self._writer is not None:
            for key, value in row.items():
                if key not in ("update", "episodes"):
                    self._writer.add_scalar(key, value, row["episodes"])
        append_row(self.run_dir / METRICS, row)
        if self.on_update is not None and row["update"] > 0:
            self.on_update(row)

    def save(
        self,
        lm: PreTrainedModel,
        info: TaskInfo,
        update: int,
        episodes: int,
        state: dict[str, Any] | None = None,
        extra: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write ``checkpoint/`` atomically (a crash mid-write keeps the previous one): ``lm`` as a
        model directory, the progress, ``state`` as ``trainer.pt`` if given, and whatever
        ``extra(directory)`` adds."""
        with write_dir(self.run_dir / CHECKPOINT) as tmp:
            save_reference(lm, tmp, info, None if self.codec is None else self.codec.tokenizer)
            write_progress(tmp, update, episodes)
            if state is not None:
                save_trainer_state(tmp, state)
            if extra is not None:
                extra(tmp)
        return checkpoint_dir(self.run_dir)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

"""agents: language-model policies for arith_gym and their training, in layers.

Each layer imports only from the ones above it in this list (``tests/test_layout.py``):

- :mod:`agents.kl` (KL estimators, certainty, weights), :mod:`agents.rundir` (run directories:
  checkpoints, metrics CSV, the resume rule), :mod:`agents.run_identity` (a run's fingerprint,
  lock and status), :mod:`agents.settings` (typed settings);
- :mod:`agents.lm`: the model, KV-cached decoding, episodes, teacher-forced batches, pre-training;
- :mod:`agents.evaluation`: accuracy, teacher forcing, statistics, certainty gap, finder;
- :mod:`agents.rl`: RL fine-tuning (config and presets, methods, policy, rollout, update, trainer);
- :mod:`agents.sb3`: Stable-Baselines3 with the LM as its policy; :mod:`agents.trl`: the
  critical-token KL for TRL's ``GRPOTrainer`` (optional extra);
- :mod:`agents.experiments` (``arith-rl compare``) and :mod:`agents.bench` (throughput);
- :mod:`agents.cli`: the ``arith-rl`` command.
"""


class MissingExtra(RuntimeError):
    """An optional dependency (a ``pip install 'arith-gym[extra]'``) is needed and absent."""

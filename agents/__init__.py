"""agents: language-model policies for arith_gym and their training.

Modules, one concept each:

- ``model``: GPT-2 with the arith_gym vocabulary (size presets, tokenizer, save/load).
- ``pretrain``: supervised pre-training of reference models on scratchpad addition.
- ``decoding`` / ``episodes``: KV-cached batched decoding; whole episodes in the vector env.
- ``evaluate`` / ``teacher_forcing``: accuracy tables with confidence intervals; where models fail.
- ``policy`` / ``rollout`` / ``kl`` / ``ppo`` / ``config`` / ``train``: RL fine-tuning with a
  critical-token weighted KL penalty (PPO and A2C).
- ``methods`` / ``compare`` / ``stats``: named exploration methods, their multi-seed comparison.
- ``sb3``: Stable-Baselines3 policies around the LM.
- ``bench``: rollout throughput; ``cli``: the ``arith-rl`` command.
"""


class MissingExtra(RuntimeError):
    """An optional dependency (a ``pip install 'arith-gym[extra]'``) is needed and absent."""

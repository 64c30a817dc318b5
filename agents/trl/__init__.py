"""agents.trl: the paper's critical-token KL for TRL's ``GRPOTrainer``, and the task in TRL's terms.

An optional extra: ``pip install 'arith-gym[trl]'``. ::

    from agents.trl import WeightedKLGRPOTrainer, problem_dataset, prepare_model, task_reward

    model = prepare_model(agents.lm.load_reference()[0])
    trainer = WeightedKLGRPOTrainer(model=model, reward_funcs=task_reward,
                                    train_dataset=problem_dataset("plus1", 3, 512), args=GRPOConfig(...),
                                    processing_class=tokenizer, kl_weighting="critical", kl_beta=150)

- :mod:`~agents.trl.task`: the dataset, the reward function, the episode-end and position adapters;
- :mod:`~agents.trl.grpo`: :class:`WeightedKLGRPOTrainer`;
- :mod:`~agents.trl.train`: :func:`train_trl_grpo`, a TRL run from an ``RLConfig``.
"""

from agents import MissingExtra

try:
    import datasets  # noqa: F401
    import trl  # noqa: F401
except ImportError:
    raise MissingExtra("agents.trl needs TRL: pip install 'arith-gym[trl]' (or pip install trl)") from None

from agents.trl.grpo import SUPPORTED_LOSS_TYPES, WeightedKLGRPOTrainer
from agents.trl.task import (
    CriticalLabels,
    EndEpisodes,
    addition_reward,
    end_episodes_in_generate,
    load_tokenizer,
    positions_from_attention_mask,
    prepare_model,
    problem_dataset,
    task_reward,
)

__all__ = [
    "SUPPORTED_LOSS_TYPES",
    "CriticalLabels",
    "EndEpisodes",
    "WeightedKLGRPOTrainer",
    "addition_reward",
    "end_episodes_in_generate",
    "load_tokenizer",
    "positions_from_attention_mask",
    "prepare_model",
    "problem_dataset",
    "task_reward",
]

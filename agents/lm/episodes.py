"""Play whole episodes of the arith_gym vector env with a language model (no training data).

The environment judges every episode: it owns the text format, termination and reward, so
evaluation and pre-training checks can never disagree with what RL optimises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedModel

from agents.lm.decoding import RowTracker, choose_tokens
from agents.lm.gpt2_decoding import cached_decoder
from arith_gym.task import ProblemKey, Task
from arith_gym.tokenizer import encode
from arith_gym.vector_env import TaskVectorEnv


def make_vector_env(
    num_envs: int, comfort_digits: int, split: str, task: str | Task = "Addition", **kwargs
) -> TaskVectorEnv:
    """``task``'s native batched env with autoreset off: finished rows wait until the batch is done."""
    return TaskVectorEnv(
        num_envs, comfort_digits, split, autoreset_mode=AutoresetMode.DISABLED, task=task, **kwargs
    )


@torch.no_grad()
def play_episodes(
    model: PreTrainedModel,
    operands: Sequence[ProblemKey],
    comfort_digits: int,
    split: str,
    temperature: float,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    drop_finished: bool = True,
    task: str | Task = "Addition",
) -> tuple[np.ndarray, list[str]]:
    """Whether each forced problem of ``task`` was solved, and the generated texts.

    ``temperature=0`` (:data:`~agents.lm.decoding.GREEDY`) decodes greedily. ``split`` only sizes
    the env's context: pass the smallest split whose operands are at least as long as the given ones.
    ``drop_finished``: see :class:`~agents.lm.decoding.RowTracker` (the same episodes, faster).
    """
    correct = np.zeros(len(operands), dtype=bool)
    texts: list[str] = [""] * len(operands)
    for start in range(0, len(operands), batch_size):
        chunk = list(operands[start : start + batch_size])
        env = make_vector_env(len(chunk), comfort_digits, split, task)
        solved, chunk_texts = _play_batch(model, env, chunk, temperature, generator, drop_finished)
        env.close()
        correct[start : start + len(chunk)] = solved
        texts[start : start + len(chunk)] = chunk_texts
    return correct, texts


def _play_batch(model, env, operands, temperature, generator, drop_finished) -> tuple[np.ndarray, list[str]]:
    _, info = env.reset(options={"operands": operands})
    decoder = cached_decoder(model)
    tracker = RowTracker(len(operands), decoder.device, share=0.25 if drop_finished else None)
    logits = decoder.start([encode(p) for p in info["prompt"]]).logits[:, -1]
    done = np.zeros(len(operands), dtype=bool)
    correct = np.zeros(len(operands), dtype=bool)
    texts = [""] * len(operands)
    while not done.all():
        actions = choose_tokens(tracker.full(logits), temperature, generator)
        _, _, terminated, truncated, info = env.step(actions.cpu().numpy())
        ended = (terminated | truncated) & ~done
        for row in np.flatnonzero(ended):
            correct[row] = bool(info["correct"][row])
            texts[row] = str(info["text"][row])
        done |= ended
        if not done.all():
            held = tracker.drop_finished(decoder, torch.as_tensor(done, device=decoder.device))
            logits = decoder.step(actions[held]).logits[:, -1]
    return correct, texts

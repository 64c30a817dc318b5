"""Play whole episodes of an arith_gym task with a language model (no training data).

The environment judges every episode: it owns the text format, termination and reward, so
evaluation and pre-training checks can never disagree with what RL optimises. A model of the
character tokens plays the native vector env; any other causal LM plays with its own tokenizer
(:mod:`arith_gym.codec`) through one :class:`~arith_gym.task_env.TaskEnv` per episode. Both
decode over a KV cache: the GPT-2 fast path where it applies, else transformers' own cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedModel

from agents.lm.decoding import RowTracker, choose_tokens
from agents.lm.gpt2_decoding import cached_decoder
from arith_gym.codec import Codec, TokenizerCodec
from arith_gym.task import ProblemKey, Task
from arith_gym.task_env import TaskEnv
from arith_gym.tokenizer import encode
from arith_gym.tokenizer_vector_env import TokenizerVectorEnv
from arith_gym.vector_env import TaskVectorEnv


def make_vector_env(
    num_envs: int,
    comfort_digits: int,
    split: str,
    task: str | Task = "Addition",
    tokenizer: Any = None,
    **kwargs,
) -> TaskVectorEnv | TokenizerVectorEnv:
    """``task``'s batched env with autoreset off (finished rows wait until the batch is done): the
    native one for the character tokens, a batch of single envs for any other ``tokenizer``."""
    if tokenizer is not None:
        return TokenizerVectorEnv(num_envs, comfort_digits, split, task=task, tokenizer=tokenizer, **kwargs)
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
    tokenizer: Any = None,
) -> tuple[np.ndarray, list[str]]:
    """Whether each forced problem of ``task`` was solved, and the generated texts.

    ``tokenizer``: None for a model of the character tokens; else the model's Hugging Face
    tokenizer (or an :class:`arith_gym.codec.Codec`), and ``model`` any causal LM.

    ``temperature=0`` (:data:`~agents.lm.decoding.GREEDY`) decodes greedily. ``split`` only sizes
    the env's context: pass the smallest split whose operands are at least as long as the given ones.
    ``drop_finished``: see :class:`~agents.lm.decoding.RowTracker` (the same episodes, faster).
    """
    correct = np.zeros(len(operands), dtype=bool)
    texts: list[str] = [""] * len(operands)
    codec = None if tokenizer is None else model_codec(model, tokenizer)
    for start in range(0, len(operands), batch_size):
        chunk = list(operands[start : start + batch_size])
        if codec is not None:
            envs = [TaskEnv(task, comfort_digits, split, tokenizer=codec) for _ in chunk]
            solved, chunk_texts = _play_envs(model, envs, codec, chunk, temperature, generator)
            correct[start : start + len(chunk)] = solved
            texts[start : start + len(chunk)] = chunk_texts
            continue
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


def model_codec(model: PreTrainedModel, tokenizer: Any) -> Codec:
    """``tokenizer`` as the codec of ``model``'s actions: its ids up to the model's output size
    (a model's embedding matrix is often wider than its tokenizer)."""
    if isinstance(tokenizer, Codec):
        return tokenizer
    return TokenizerCodec(tokenizer, vocab_size=model.get_output_embeddings().out_features)


def _play_envs(
    model: PreTrainedModel,
    envs: list[TaskEnv],
    codec: Codec,
    problems: list[ProblemKey],
    temperature: float,
    generator: torch.Generator | None,
) -> tuple[np.ndarray, list[str]]:
    """Play one episode per env (``problems[i]`` on ``envs[i]``), every row decoded each step."""
    infos = [env.reset(options={"problem": problem})[1] for env, problem in zip(envs, problems, strict=True)]
    decoder = cached_decoder(model)
    logits = decoder.start([codec.encode(info["prompt"]) for info in infos]).logits[:, -1]
    live = np.ones(len(envs), dtype=bool)
    correct, texts = np.zeros(len(envs), dtype=bool), [""] * len(envs)
    while live.any():
        actions = choose_tokens(logits, temperature, generator)
        for row in np.flatnonzero(live):
            _, _, terminated, truncated, info = envs[row].step(int(actions[row]))
            if terminated or truncated:
                live[row], correct[row], texts[row] = False, info["correct"], info["text"]
        if live.any():
            logits = decoder.step(actions).logits[:, -1]
    return correct, texts

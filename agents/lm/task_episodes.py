"""Episodes of any registered task (:mod:`arith_gym.task`) played by a model, in batches.

The env (:class:`arith_gym.task_env.TaskEnv`) is the judge; the model runs a KV-cached forward
of the newest token of every row per step, through transformers' own cache (any causal LM).
Addition keeps its faster path (:func:`agents.lm.episodes.play_episodes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.lm.decoding import CACHE_KEYWORD, choose_tokens, left_pad
from arith_gym.task import ProblemKey, Task, get_task
from arith_gym.task_env import TaskEnv
from arith_gym.tokenizer import PAD_ID, encode


@torch.no_grad()
def play_task_episodes(
    model: PreTrainedModel,
    task: str | Task,
    problems: Sequence[ProblemKey],
    comfort_digits: int,
    split: str,
    temperature: float,
    generator: torch.Generator | None = None,
    batch: int = 64,
) -> tuple[np.ndarray, list[str]]:
    """Whether ``model`` solves each of ``task``'s ``problems`` (bool array) and its texts, sampled
    at ``temperature`` (0: greedy) in batches of ``batch`` episodes."""
    task = get_task(task)
    device = next(model.parameters()).device
    solved, texts = np.zeros(len(problems), dtype=bool), [""] * len(problems)
    for start in range(0, len(problems), batch):
        rows = list(range(start, min(start + batch, len(problems))))
        envs = [TaskEnv(task, comfort_digits, split) for _ in rows]
        infos = [
            env.reset(options={"problem": problems[row]})[1] for env, row in zip(envs, rows, strict=True)
        ]
        input_ids, attention, positions = left_pad([encode(info["prompt"]) for info in infos], device)
        out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        live = np.ones(len(rows), dtype=bool)
        for _ in range(envs[0].max_episode_steps):
            tokens = choose_tokens(out.logits[:, -1], temperature, generator)
            tokens = torch.where(torch.as_tensor(live, device=device), tokens, PAD_ID)
            for i, env in enumerate(envs):
                if live[i]:
                    _, _, terminated, truncated, info = env.step(int(tokens[i]))
                    if terminated or truncated:
                        live[i] = False
                        solved[rows[i]], texts[rows[i]] = info["correct"], info["text"]
            if not live.any():
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            cache = {CACHE_KEYWORD: getattr(out, CACHE_KEYWORD)}
            out = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=positions, **cache)
    return solved, texts

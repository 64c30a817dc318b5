"""Teacher-forced batches: prompt + target text as one right-padded sequence, labels on the target.

Pre-training learns from them; the evaluation's teacher forcing reads the model's
probabilities of the right tokens from them.
"""

from __future__ import annotations

import numpy as np
import torch

from arith_gym.codec import TokenizerCodec
from arith_gym.task import Task, get_task
from arith_gym.tokenizer import PAD_ID, encode

IGNORE_INDEX = -100
"""The label of a position that is not scored (the prompt, padding, unscored critical tokens)."""


def make_batch(
    problems: list[tuple[int, ...]],
    offsets: np.ndarray | None = None,
    unscored_critical_of: int | None = None,
    unscored_kinds: frozenset[str] | None = None,
    task: str | Task = "Addition",
    codec: TokenizerCodec | None = None,
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``position_ids`` and ``labels`` (target only)
    of ``task``'s ``problems``, in the character ids or, with ``codec``, in another tokenizer's
    (prompt and target each encoded canonically, as the env encodes the prompt and a model
    writes the target).

    With ``unscored_critical_of=N`` the structural critical tokens of ``unscored_kinds`` (None:
    every kind of the task) for a comfort zone of N get no label (problems within it have none;
    with a codec: every token whose text covers such a character).
    """
    task = get_task(task)
    encoder = encode if codec is None else codec.encode
    prompts = [encoder(task.prompt(problem)) for problem in problems]
    target_texts = [task.target(problem, 1)[0] for problem in problems]  # the text is N's too
    targets = [encoder(text) for text in target_texts]
    width = max(len(p) + len(t) for p, t in zip(prompts, targets, strict=True))
    input_ids = np.full((len(problems), width), PAD_ID if codec is None else 0, dtype=np.int64)
    labels = np.full_like(input_ids, IGNORE_INDEX)
    attention = np.zeros_like(input_ids)
    for row, (prompt, target) in enumerate(zip(prompts, targets, strict=True)):
        end = len(prompt) + len(target)
        input_ids[row, :end] = np.concatenate([prompt, target])
        labels[row, len(prompt) : end] = target
        attention[row, :end] = 1
        if unscored_critical_of is not None:
            kinds = task.critical_kinds
            critical = [
                record[0]
                for record in task.target(problems[row], unscored_critical_of)[1]
                if unscored_kinds is None or kinds[record[4]] in unscored_kinds
            ]
            if codec is not None:  # the tokens whose text covers a critical character
                spans = codec.offsets(target_texts[row])
                critical = [
                    t for t, (start, end) in enumerate(spans) if any(start <= p < end for p in critical)
                ]
            labels[row, len(prompt) + np.asarray(critical, dtype=np.int64)] = IGNORE_INDEX
    positions = np.tile(np.arange(width), (len(problems), 1))  # writable: torch shares the memory
    if offsets is not None:
        positions = positions + offsets[:, None]
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention),
        "position_ids": torch.from_numpy(positions),
        "labels": torch.from_numpy(labels),
    }

"""A task in TRL's terms: a dataset of prompts, a reward function, and two adapters that make a
transformers ``generate`` / forward play episodes exactly as the env does.

Everything about the task comes from ``arith_gym``: the prompts and problems (the registered
task's, training problems only), where an episode ends (the result line's newline) and the
judgement (``rules.judge``), the same for every task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel

from arith_gym.codec import Codec
from arith_gym.rules import (
    RESULT_LINE_ENDED,
    RESULT_LINE_START,
    RESULT_LINE_TABLE,
    advance_result_line,
    judge,
)
from arith_gym.task import Task, get_task, task_problems
from arith_gym.task_env import TaskEnv
from arith_gym.tokenizer import PAD_ID, PAD_TOKEN


def problem_dataset(split: str, comfort_digits: int, count: int, seed: int = 0, task: str = "Addition"):
    """A ``datasets.Dataset`` of ``count`` training problems of ``task``'s ``split`` (never held-out
    ones), drawn with ``seed``: columns ``prompt`` (the env's prompt text), ``problem`` (the task's
    key, e.g. ``"12+345"``), ``operands`` (the key's integers, space-separated: what
    :class:`CriticalLabels` replays), ``answer`` and, where the task names its key's entries
    (addition: ``a``, ``b``), one column each (decimal strings: numbers may exceed 64 bits)."""
    from datasets import Dataset

    rules = get_task(task)
    problems = task_problems(rules, split, comfort_digits, count, seed, problem_set="train")
    columns = {
        "prompt": [rules.prompt(problem) for problem in problems],
        "problem": [rules.key(problem) for problem in problems],
        "operands": [" ".join(map(str, problem)) for problem in problems],
    }
    for index, name in enumerate(getattr(rules, "info_fields", ())):
        columns[name] = [str(problem[index]) for problem in problems]
    columns["answer"] = [str(rules.answer(problem)) for problem in problems]
    return Dataset.from_dict(columns)


def load_tokenizer(model_dir: str | Path):
    """The model directory's tokenizer, with the pad token as its end-of-sequence token (the one
    :class:`EndEpisodes` forces and ``generate`` stops at)."""
    from transformers import PreTrainedTokenizerFast

    # The generic class: an architecture's own (AutoTokenizer's pick) may add tokens of its own.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    tokenizer.eos_token = PAD_TOKEN
    return tokenizer


def completion_text(completion: object) -> str:
    """The text of a TRL completion: a string, ``None`` (nothing generated: ``""``), or a chat-style
    message dict or list of them (their ``content`` joined).

    Raises:
        TypeError: one line naming the type of a value that holds no text.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict) and isinstance(completion.get("content", ""), str):
        return completion.get("content", "")
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(message) for message in completion)
    raise TypeError(
        f"cannot score a completion of type {type(completion).__name__}: expected text or chat messages"
    )


def task_reward(completions: list[object], answer: list[object], **_: Any) -> list[float]:
    """TRL reward function: 1.0 where the completion states the right result, else 0.0; it never
    raises on any text.

    The rule is the env's: the episode ends at the result line's newline (the first complete line
    after the first ``</scratch>\n``), so what follows it is never read, and a completion that never
    ends is wrong (``arith_gym.rules.judge`` reads exactly that line). Foreign characters, an empty
    or very long text are judged the same way; only a value with no text at all (not a string,
    ``None`` or chat messages) or an answer that is not a number is a one-line ``TypeError``/``ValueError``.
    """
    rewards = []
    for completion, expected in zip(completions, answer, strict=True):
        try:
            target = int(expected)
        except (TypeError, ValueError):
            raise ValueError(f"answer {expected!r} is not an integer") from None
        rewards.append(judge(completion_text(completion), target, 0.0)[2])
    return rewards


class CriticalLabels:
    """The env's structural critical-token labels of generated completions, for a KL weighting that
    reads them (``oracle_critical``): each completion is replayed in the task's env
    (:class:`~arith_gym.task_env.TaskEnv`, the same ``tokenizer``), so a token is critical exactly
    when the env would label that step critical (on track before it, its text covering a critical
    character). Replaying ends where the env ends the episode; later tokens (the forced
    end-of-sequence) and ids outside the vocabulary are not critical.

    Args:
        task: a registered task name (or task object).
        comfort_digits: the reference's N.
        split: the split the completions were generated on (sizes the env's episode length).
        tokenizer: None for the character ids, else the reference's tokenizer or codec.
    """

    def __init__(
        self, task: str | Task, comfort_digits: int, split: str = "plus1", tokenizer: Any = None
    ) -> None:
        self.env = TaskEnv(task, comfort_digits, split, tokenizer=tokenizer)

    def __call__(self, operands: str, token_ids: Sequence[int]) -> list[bool]:
        """The labels of ``token_ids`` played on the problem ``operands`` (the dataset's column)."""
        self.env.reset(options={"problem": tuple(int(value) for value in operands.split())})
        labels = [False] * len(token_ids)
        vocab = self.env.action_space.n
        for step, token in enumerate(token_ids):
            if not 0 <= int(token) < vocab:
                break
            _, _, terminated, truncated, info = self.env.step(int(token))
            labels[step] = info["critical"] is not None
            if terminated or truncated:
                break
        return labels


class EndEpisodes(LogitsProcessor):
    """Forces the end-of-sequence token once a row has written its result line's newline, so that
    ``generate`` stops where the env ends the episode (the EOS itself is the completion's last token)."""

    def __init__(self, eos_token_id: int = PAD_ID, codec: Codec | None = None) -> None:
        self.eos_token_id = eos_token_id
        self.codec = codec  # another tokenizer than the characters: its tokens' text is read
        # Addition's table: a later character (id >= 41, e.g. "*") moves the automaton as the pad
        # column does (neither is in "</scratch>" or a newline), so ids are clamped into it.
        self.table = torch.as_tensor(RESULT_LINE_TABLE)
        self.prompt_length: int | None = None
        self.state: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:  # the first call sees the prompts alone
            self.prompt_length = input_ids.shape[1]
            self.state = torch.full((input_ids.shape[0],), RESULT_LINE_START, dtype=torch.long)
        elif input_ids.shape[1] > self.prompt_length and self.codec is not None:
            pieces = [self.codec.piece(int(token)) or "" for token in input_ids[:, -1].tolist()]
            states = [
                advance_result_line(int(s), p) for s, p in zip(self.state.tolist(), pieces, strict=True)
            ]
            self.state = torch.as_tensor(states, dtype=torch.long)
        elif input_ids.shape[1] > self.prompt_length:
            last = input_ids[:, -1].cpu().clamp(max=self.table.shape[1] - 1)
            self.state = self.table[self.state, last]
        ended = (self.state == RESULT_LINE_ENDED).to(scores.device)
        if ended.any():
            scores[ended] = float("-inf")
            scores[ended, self.eos_token_id] = 0.0
        return scores


def end_episodes_in_generate(
    model: PreTrainedModel, eos_token_id: int = PAD_ID, codec: Codec | None = None
) -> PreTrainedModel:
    """Make ``model.generate`` stop each row where the env ends its episode (:class:`EndEpisodes`)."""
    generate = model.generate

    def generate_episodes(*args: Any, **kwargs: Any):
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(EndEpisodes(eos_token_id, codec))
        return generate(*args, logits_processor=processors, **kwargs)

    model.generate = generate_episodes
    return model


def positions_from_attention_mask(model: PreTrainedModel) -> PreTrainedModel:
    """Make a forward without ``position_ids`` count positions from the attention mask.

    ``generate`` numbers a left-padded prompt's tokens from 0, but TRL scores completions with a
    plain ``model(input_ids, attention_mask)``, which numbers from the padding: for a model with
    absolute position embeddings (GPT-2) the two would see different inputs. This forward
    pre-hook fills in the positions ``generate`` used (the reference copy TRL makes keeps it).
    """

    def fill_positions(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if kwargs.get("position_ids") is None and mask is not None and kwargs.get("past_key_values") is None:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return args, kwargs

    model.register_forward_pre_hook(fill_positions, with_kwargs=True)
    return model


def prepare_model(
    model: PreTrainedModel, codec: Codec | None = None, eos_token_id: int = PAD_ID
) -> PreTrainedModel:
    """``model`` made to play the env's episodes under TRL: positions from the attention mask
    and ``generate`` ending each row at its result line (``codec``: a model of another
    tokenizer's, whose end-of-sequence id is ``eos_token_id``)."""
    return end_episodes_in_generate(positions_from_attention_mask(model), eos_token_id, codec)


addition_reward = task_reward
"""The reward's earlier name (every task's answer is judged by the same rule)."""

"""Byte-level BPE tokenizers trained offline on a task's own text, and models of any architecture
for them: what a reference of another tokenizer than the characters is made of (docs/tokenizers.md).

The tokenizer is trained with the ``tokenizers`` library on the prompts and targets of seeded
problems of the task's comfort zone and its ``plus1`` split (the text RL will see), so its merges
fuse the task's frequent strings: digits with the comma that continues an operand list (``8,``).
Nothing is downloaded.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from agents.lm.model import ModelSize, model_size
from arith_gym.task import get_task, task_problems

BPE_PAD = "<pad>"
"""The BPE tokenizer's one special token (padding; it writes no text, so it ends an episode)."""
ARCHITECTURES = ("llama", "qwen2")
"""Model types :func:`build_causal_lm` builds from a config (transformers' ``model_type``)."""


def train_bpe(
    task: str, comfort_digits: int, vocab_size: int = 384, problems: int = 2000, seed: int = 0
) -> Tokenizer:
    """A byte-level BPE of ``vocab_size`` tokens (the 256 bytes, :data:`BPE_PAD`, then merges)
    trained on ``problems`` seeded problems of ``task`` per split (comfort and plus1)."""
    if vocab_size < 258:
        raise ValueError(
            f"a byte-level BPE needs vocab_size >= 258 (256 bytes, the pad, a merge), got {vocab_size}"
        )
    rules = get_task(task)
    texts = [
        rules.prompt(problem) + rules.target(problem, comfort_digits)[0]
        for split in ("comfort", "plus1")
        for problem in task_problems(rules, split, comfort_digits, problems, seed)
    ]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BPE_PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def build_causal_lm(
    architecture: str, size: str | ModelSize, vocab_size: int, seed: int | None = None, pad_token_id: int = 0
) -> PreTrainedModel:
    """A freshly initialised causal LM of ``architecture`` (:data:`ARCHITECTURES`) at a model size
    preset (the GPT-2 presets' depth, width and heads), dropout off."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    shape = model_size(size)
    if seed is not None:
        torch.manual_seed(seed)
    config = AutoConfig.for_model(
        architecture,
        vocab_size=vocab_size,
        hidden_size=shape.n_embd,
        intermediate_size=4 * shape.n_embd,
        num_hidden_layers=shape.n_layer,
        num_attention_heads=shape.n_head,
        num_key_value_heads=shape.n_head,
        max_position_embeddings=shape.n_positions,
        pad_token_id=pad_token_id,
        bos_token_id=pad_token_id,
        eos_token_id=pad_token_id,
        tie_word_embeddings=True,
        attention_dropout=0.0,
    )
    return AutoModelForCausalLM.from_config(config).eval()

"""Any causal LM with its own tokenizer plays and is evaluated (issue: any tokenizer, any LM).

A tiny Llama built from a config and a byte-level BPE trained here (offline, about a second):
episodes decoded over transformers' own KV cache equal whole-context greedy decoding, pass@k
counts them; the shipped GPT-2 through its saved character tokenizer takes the same path and
plays exactly the episodes of the GPT-2 fast path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.evaluation.heldout import heldout_eval_set
from agents.evaluation.passk import correct_counts
from agents.lm.decoding import GREEDY
from agents.lm.episodes import model_codec, play_episodes
from agents.lm.model import CHECKPOINTS_DIR, load_reference
from arith_gym.task import get_task, task_problems
from arith_gym.task_env import TaskEnv

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = []
    for name in ("Addition", "Multiply"):
        task = get_task(name)
        texts += [task.prompt(p) + task.target(p, 2)[0] for p in task_problems(task, "plus1", 2, 200, seed=0)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<pad>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    return tokenizer


@pytest.fixture(scope="module")
def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=320,  # wider than the tokenizer, as real models often are
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
    )
    return LlamaForCausalLM(config).eval()


def _greedy_by_whole_context(model, codec, task, problem) -> str:
    env = TaskEnv(task, comfort_digits=2, split="plus1", tokenizer=codec)
    _, info = env.reset(options={"problem": problem})
    ids = list(codec.encode(info["prompt"]))
    while True:
        with torch.no_grad():
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        _, _, terminated, truncated, info = env.step(token)
        if terminated or truncated:
            return info["text"]
        ids.append(token)


@pytest.mark.parametrize("name", ["Addition", "Multiply"])
def test_a_llama_with_a_bpe_tokenizer_plays_as_whole_context_decoding_does(llama, bpe, name):
    problems = task_problems(name, "plus1", 2, 3, seed=1)
    _, texts = play_episodes(llama, problems, 2, "plus1", GREEDY, task=name, tokenizer=bpe)
    codec = model_codec(llama, bpe)
    assert codec.vocab_size == 320 and codec.piece(310) is None  # ids past the tokenizer write nothing
    for problem, text in zip(problems, texts, strict=True):
        assert text == _greedy_by_whole_context(llama, codec, name, problem)


def test_pass_at_k_counts_any_models_episodes(llama, bpe):
    problems = task_problems("Addition", "plus1", 2, 2, seed=0)
    counts = correct_counts(llama, problems, 2, "plus1", 1.0, samples=3, task="Addition", tokenizer=bpe)
    assert counts.shape == (2,) and ((counts >= 0) & (counts <= 3)).all()


def test_the_shipped_model_through_its_saved_tokenizer_plays_the_fast_paths_episodes():
    from transformers import AutoTokenizer

    model, _ = load_reference(CHECKPOINTS_DIR / "gpt2-tiny-n3")
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINTS_DIR / "gpt2-tiny-n3")
    problems = heldout_eval_set(3, "plus1", 24, 24).head("plus1")
    for temperature in (GREEDY, 1.0):
        fast = play_episodes(model, problems, 3, "plus1", temperature, torch.Generator().manual_seed(0))
        generic = play_episodes(
            model, problems, 3, "plus1", temperature, torch.Generator().manual_seed(0), tokenizer=tokenizer
        )
        assert fast[1] == generic[1]
        np.testing.assert_array_equal(fast[0], generic[0])

"""Rollout throughput: KV-cached vs naive (whole context every token), measured in one run.

The default workload is the issue's: batch 64, ``plus1`` problems for N = 7, with a
randomly initialised tiny GPT-2 whose pad logit is masked so that episodes run their full
length (about 700 tokens, the env's step limit for N = 7) instead of stopping at a random
pad. Both modes play the same problems with the same sampling seed.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from agents.episodes import make_vector_env
from agents.model import build_model
from agents.policy import LMPolicy
from agents.rollout import collect_rollout
from arith_gym.tokenizer import PAD_ID


class NoPadLM(nn.Module):
    """Wraps a causal LM so that it never proposes the pad token (episodes then run long)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm
        self.config = lm.config

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def forward(self, **kwargs):
        out = self.lm(**kwargs)
        out.logits[..., PAD_ID] = float("-inf")
        return out


def rollout_benchmark(
    batch: int = 64,
    comfort_digits: int = 7,
    split: str = "plus1",
    size: str = "tiny",
    max_tokens: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Tokens/s of the cached and the naive rollout and the share of time spent in the env."""
    torch.manual_seed(seed)
    lm = NoPadLM(build_model(size, seed=seed)).eval()
    reference = NoPadLM(build_model(size, seed=seed + 1)).eval()
    policy = _policy(lm)
    env = make_vector_env(batch, comfort_digits, split, max_episode_steps=max_tokens)
    results: dict[str, float] = {}
    for mode, cached in (("cached", True), ("naive", False)):
        generator = torch.Generator().manual_seed(seed)
        started = time.perf_counter()
        rollout = collect_rollout(policy, reference, env, generator, seed=seed, cached=cached)
        seconds = time.perf_counter() - started
        results[f"{mode}_tokens"] = rollout.num_tokens
        results[f"{mode}_seconds"] = seconds
        results[f"{mode}_tokens_per_s"] = rollout.num_tokens / seconds
        results[f"{mode}_env_share"] = rollout.timings["env"] / rollout.timings["total"]
        results["tokens_per_episode"] = rollout.num_tokens / batch
    results["speedup"] = results["cached_tokens_per_s"] / results["naive_tokens_per_s"]
    return results


def _policy(lm: NoPadLM) -> LMPolicy:
    policy = LMPolicy(lm.lm, temperature=1.0)
    policy.lm = lm  # the value head reads the wrapped model's hidden states all the same
    return policy

"""Throughput benchmarks, each measured in one run: KV-cached vs naive rollouts, a full RL rollout
vs ``generate()`` of the policy alone, SB3 vs cached.

The default workload is the issue's: batch 64, ``plus1`` problems for N = 7, with a
randomly initialised tiny GPT-2 whose pad logit is masked so that episodes run their full
length (about 700 tokens, the env's step limit for N = 7) instead of stopping at a random
pad. Both modes play the same problems with the same sampling seed.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from agents.lm.decoding import left_pad
from agents.lm.episodes import make_vector_env
from agents.lm.gpt2_decoding import GPT2Parts, gpt2_parts
from agents.lm.model import DEFAULT_REFERENCE, build_model, load_reference
from agents.rl.algorithms import apply_algorithm
from agents.rl.config import PRESETS
from agents.rl.policy import LMPolicy
from agents.rl.rollout import collect_rollout
from agents.rl.trainer import Trainer
from agents.sb3.env import make_sb3_env
from agents.sb3.kl_penalty import with_kl_penalty
from agents.sb3.policy import LMActorCriticPolicy
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
        return _no_pad(self.lm(**kwargs))

    def decode_parts(self) -> GPT2Parts | None:
        """The wrapped GPT-2's decoding parts, its logits edited the same way (see ``gpt2_parts``)."""
        parts = gpt2_parts(self.lm)
        return None if parts is None else GPT2Parts(parts.body, lambda hidden: _no_pad(parts.head(hidden)))


def _no_pad(out):
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
    policy = no_pad_policy(lm)
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


def no_pad_policy(lm: NoPadLM) -> LMPolicy:
    """An :class:`LMPolicy` that samples from ``lm`` (its pad logit masked)."""
    policy = LMPolicy(lm.lm, temperature=1.0)
    policy.lm = lm  # the value head reads the wrapped model's hidden states all the same
    return policy


def rollout_vs_generate(
    batch: int = 64, comfort_digits: int = 3, split: str = "plus1", seed: int = 0
) -> dict:
    """Seconds of a full RL rollout of the shipped reference (policy sampling, environment, the
    reference's scores) and of ``transformers`` ``generate()`` of the policy alone, same prompts,
    batch and number of steps (generate runs every row to the end, as the rollout's longest)."""
    reference, task = load_reference(DEFAULT_REFERENCE)
    policy = LMPolicy(copy.deepcopy(reference), task.temperature)
    env = make_vector_env(batch, task.comfort_digits, split)
    collect_rollout(policy, reference, env, torch.Generator().manual_seed(seed), seed=seed)  # warm-up
    started = time.perf_counter()
    rollout = collect_rollout(policy, reference, env, torch.Generator().manual_seed(seed), seed=seed + 1)
    rollout_seconds = time.perf_counter() - started
    steps = rollout.actions.shape[1]
    input_ids, attention, _ = left_pad(rollout.prompts())
    settings = dict(do_sample=True, top_k=0, temperature=task.temperature, pad_token_id=PAD_ID)
    torch.manual_seed(seed)
    with torch.no_grad():
        # A full-length warm-up, as the rollout had: the first long generate() of a process runs
        # ~1.6x slower (its growing caches' first memory allocations), which is not its speed.
        for _ in range(2):
            started = time.perf_counter()
            policy.lm.generate(
                input_ids, attention_mask=attention, max_new_tokens=steps, min_new_tokens=steps, **settings
            )
    generate_seconds = time.perf_counter() - started
    return {
        "rollout_seconds": rollout_seconds,
        "generate_seconds": generate_seconds,
        "steps": steps,
        "live_tokens": rollout.num_tokens,
        "reference_seconds": rollout.timings["reference"],
        "speedup": generate_seconds / rollout_seconds,
    }


class _RolloutDone(Exception):
    """Ends ``learn()`` after its first rollout: only the rollout is timed, no update is needed."""


class _TimeOneRollout(BaseCallback):
    """Counts finished episodes and times SB3's first rollout, through SB3's public callback hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes, self.started, self.seconds = 0, 0.0, 0.0

    def _on_rollout_start(self) -> None:
        self.started = time.perf_counter()

    def _on_step(self) -> bool:
        self.episodes += int(np.sum(self.locals["dones"]))
        return True

    def _on_rollout_end(self) -> None:
        self.seconds = time.perf_counter() - self.started
        raise _RolloutDone


def sb3_vs_cached_seconds_per_episode(
    size: str = "micro",
    comfort_digits: int = 3,
    split: str = "plus1",
    episodes: int = 16,
    seed: int = 0,
    no_pad: bool = True,
) -> dict[str, float]:
    """Seconds per episode: an SB3 PPO rollout with :class:`LMActorCriticPolicy` vs
    :func:`agents.rl.rollout.collect_rollout` (KV cache), same model, ``episodes`` envs in parallel.

    ``no_pad=True`` masks the pad logit of the (randomly initialised) model, as
    ``agents.bench`` does, so that episodes run their full length like a trained model's
    instead of ending at a random pad. ``collect_rollout`` always runs the reference model
    too; SB3 is timed without (``sb3``) and with a KL penalty (``sb3_kl``: one reference
    forward per step), with ``n_steps`` = the env's step limit (about one episode per env).
    """
    torch.manual_seed(seed)
    lm = build_model(size, seed=seed).eval()
    if no_pad:
        lm = NoPadLM(lm).eval()
    results: dict[str, float] = {}

    env = make_vector_env(episodes, comfort_digits, split)
    policy = no_pad_policy(lm) if no_pad else LMPolicy(lm, temperature=1.0)
    started = time.perf_counter()
    rollout = collect_rollout(policy, lm, env, torch.Generator().manual_seed(seed), seed=seed)
    seconds = time.perf_counter() - started
    results["cached_seconds_per_episode"] = seconds / episodes
    results["cached_tokens_per_episode"] = rollout.num_tokens / episodes
    env.close()

    for name, weighting in (("sb3", "none"), ("sb3_kl", "uniform")):
        vec_env = make_sb3_env(comfort_digits, split, n_envs=episodes, seed=seed)
        steps = vec_env.get_attr("config")[0].max_episode_steps
        model = PPO(
            LMActorCriticPolicy,
            vec_env,
            n_steps=steps,
            batch_size=steps * episodes,
            seed=seed,
            device="cpu",
            policy_kwargs=dict(lm=lm, temperature=1.0, kl_weighting=weighting),
        )
        timer = _TimeOneRollout()
        # The KL callback goes first, as KLPPO orders it: it edits the rewards of each step.
        with contextlib.suppress(_RolloutDone):
            model.learn(steps * episodes, callback=with_kl_penalty(model.policy, [timer]))
        results[f"{name}_seconds_per_episode"] = timer.seconds / max(timer.episodes, 1)
        results[f"{name}_tokens_per_episode"] = steps * episodes / max(timer.episodes, 1)
        vec_env.close()
    cached = results["cached_seconds_per_episode"]
    for name in ("sb3", "sb3_kl"):
        results[f"{name}_slowdown"] = results[f"{name}_seconds_per_episode"] / cached
    return results


def rl_throughput(updates: int = 2, algo: str = "ppo", seed: int = 0, batch: int = 64) -> dict[str, float]:
    """Training episodes per second of the ``cpu`` preset (with ``algo``'s settings, ``batch``
    episodes per update) on the shipped model: ``updates`` updates of rollout + update,
    evaluations and checkpoints excluded."""
    config = apply_algorithm(PRESETS["cpu"], algo).with_overrides(seed=seed, episodes_per_update=batch)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, DEFAULT_REFERENCE, run_dir)
        rows = [trainer.train_one_update() for _ in range(updates)]
    seconds = sum(row["update_seconds"] for row in rows)
    rollout = sum(row["rollout_seconds"] for row in rows)
    episodes = sum(row["sampled_episodes"] for row in rows)
    return {
        "episodes": episodes,
        "seconds": seconds,
        "episodes_per_s": episodes / seconds,
        "rollout_share": rollout / seconds,
    }

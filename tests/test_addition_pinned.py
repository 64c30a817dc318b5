"""Addition is byte-identical to before the task family: seeded trajectories of the single and
vector env (every autoreset mode), the held-out evaluation sets and the shipped model's sampled
episodes hash to the digests measured at commit 2262c22 (before ``TaskVectorEnv``)."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import arith_gym  # noqa: F401  (registers the environments)
from agents.evaluation.heldout import heldout_eval_set
from agents.lm.episodes import play_episodes
from agents.lm.model import CHECKPOINTS_DIR, load_reference
from arith_gym.tokenizer import encode

NOISE = 0.03  # share of steps that play a random token instead of the target's


def digest(h: hashlib._Hash) -> str:
    return h.hexdigest()[:16]


def vector_digest(autoreset: str, seed: int = 0, steps: int = 400, num_envs: int = 8) -> str:
    env = gym.make_vec(
        "arith_gym/Addition-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        comfort_digits=3,
        split="plus1",
        autoreset_mode=autoreset,
    )
    h, rng = hashlib.sha256(), np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    for _ in range(steps):
        targets = [encode(t) for t in info["target"]]
        actions = np.array(
            [t[len(x)] if len(x) < len(t) else 0 for t, x in zip(targets, info["text"], strict=True)]
        )
        actions = np.where(rng.random(num_envs) < NOISE, rng.integers(0, 41, num_envs), actions)
        obs, reward, terminated, truncated, info = env.step(actions)
        for array in (obs, reward, terminated, truncated):
            h.update(array.tobytes())
        for key in (
            "a",
            "b",
            "prompt",
            "target",
            "text",
            "on_track",
            "correct",
            "result",
            "_critical",
            "_correct",
        ):
            h.update(repr(list(info[key])).encode())
        for key in sorted(info["critical"]):
            h.update(info["critical"][key].tobytes())
        if autoreset == "Disabled" and (terminated | truncated).all():
            _, info = env.reset(options={"reset_mask": np.ones(num_envs, bool)})
    return digest(h)


def single_digest(seed: int = 0, episodes: int = 20) -> str:
    env = gym.make("arith_gym/Addition-v0", comfort_digits=3, split="plus1")
    h, rng = hashlib.sha256(), np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    for _ in range(episodes):
        target, done, i = encode(info["target"]), False, 0
        while not done:
            action = int(target[i]) if i < len(target) else 0
            if rng.random() < NOISE:
                action = int(rng.integers(0, 41))
            obs, reward, terminated, truncated, info = env.step(action)
            i, done = i + 1, terminated or truncated
            h.update(obs.tobytes())
            h.update(
                repr(
                    (reward, terminated, truncated, info["text"], info["on_track"], info["critical"])
                ).encode()
            )
        h.update(repr((info["correct"], info["result"])).encode())
        _, info = env.reset()
    return digest(h)


@pytest.mark.parametrize(
    ("autoreset", "expected"),
    [("NextStep", "9e328b783db5c1c4"), ("SameStep", "1fd3a439919d988d"), ("Disabled", "32082ec045d44b47")],
)
def test_seeded_vector_env_trajectories_are_unchanged(autoreset, expected):
    assert vector_digest(autoreset) == expected


def test_seeded_single_env_trajectories_are_unchanged():
    assert single_digest() == "060edb6b2745dc1b"


@pytest.mark.parametrize(
    ("digits", "expected"), [(2, "32d66181b57ba291"), (3, "7c941d0fdfd1c40b"), (4, "7e119447b262d563")]
)
def test_evaluation_sets_are_unchanged(digits, expected):
    saved = heldout_eval_set(digits, "plus1").to_json()
    assert digest(hashlib.sha256(saved.encode())) == expected


def test_the_shipped_reference_samples_the_same_episodes():
    model, _ = load_reference(CHECKPOINTS_DIR / "gpt2-tiny-n3")
    problems = heldout_eval_set(3, "plus1", 64, 64).head("plus1")
    solved, texts = play_episodes(model, problems, 3, "plus1", 1.0, torch.Generator().manual_seed(0))
    assert digest(hashlib.sha256(json.dumps(texts).encode())) == "331c8221b1fbd05f"
    assert solved.mean() == 0.25

"""Any tokenizer (arith_gym/codec.py): a byte-level BPE trained here, offline, in about a second.

The env judges text: the canonical encoding of the target and a character-by-character path to
the same text both earn 1, a token that writes no text ends the episode as wrong, and a step is a
critical decision when its text covers a critical character while on track.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import arith_gym  # noqa: F401  (registers the environments)
from arith_gym.codec import CharacterCodec, TokenizerCodec
from arith_gym.task import get_task
from arith_gym.task_env import TaskEnv
from arith_gym.tokenizer import CHARACTERS, PAD_ID

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def bpe(addition_bpe):
    """A byte-level BPE of 400 tokens trained on addition's own text (N = 3, comfort and plus1)."""
    return addition_bpe


def _play(env, ids):
    infos = []
    for token in ids:
        _, reward, terminated, truncated, info = env.step(int(token))
        infos.append(info)
        if terminated or truncated:
            return reward, terminated, infos
    return None, False, infos


def test_the_env_checker_passes_with_a_bpe_tokenizer(bpe):
    env = gym.make("arith_gym/Addition-v0", comfort_digits=3, split="plus1", tokenizer=bpe)
    assert isinstance(env.unwrapped, TaskEnv) and env.action_space.n == 400
    check_env(env.unwrapped, skip_render_check=True)


@given(seed=st.integers(0, 2**16), split=st.sampled_from(["comfort", "plus1", "plus2"]))
@settings(max_examples=20, deadline=None)
def test_the_canonical_and_the_character_path_both_earn_one(bpe, seed, split):
    codec = TokenizerCodec(bpe)
    env = TaskEnv("Addition", comfort_digits=3, split=split, tokenizer=codec)
    _, info = env.reset(seed=seed)
    target = info["target"]
    canonical = codec.encode(target)
    assert len(canonical) < len(target)  # BPE fuses characters
    reward, terminated, infos = _play(env, canonical)
    assert (reward, terminated, infos[-1]["correct"], infos[-1]["text"]) == (1.0, True, True, target)
    env.reset(seed=seed)
    by_character = [int(codec.encode(character)[0]) for character in target]
    reward, terminated, infos = _play(env, by_character)
    assert (reward, terminated, infos[-1]["correct"], infos[-1]["text"]) == (1.0, True, True, target)


@given(seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_critical_labels_land_on_the_tokens_that_cover_the_critical_characters(bpe, seed):
    codec = TokenizerCodec(bpe)
    env = TaskEnv("Addition", comfort_digits=3, split="plus1", tokenizer=codec)
    _, info = env.reset(seed=seed)
    critical = {t.position for t in env._critical_at.values()}
    spans = codec.offsets(info["target"])
    _, _, infos = _play(env, codec.encode(info["target"]))
    labelled = [(span, step["critical"]) for span, step in zip(spans, infos, strict=True)]
    for (start, end), token in labelled:
        covered = sorted(p for p in critical if start <= p < end)
        assert (token.position if token else None) == (covered[0] if covered else None)


def test_a_token_without_text_ends_the_episode_as_wrong_and_never_raises(bpe):
    codec = TokenizerCodec(bpe, vocab_size=420)  # a model's output may be wider than the tokenizer
    pad = bpe.token_to_id("<pad>")
    partial = bpe.token_to_id("Ã")  # the byte 0xC3 alone: the start of a two-byte character
    assert codec.piece(pad) is None and codec.piece(410) is None and codec.piece(partial) is None
    for token in (pad, 410, partial):
        env = TaskEnv("Addition", comfort_digits=3, split="plus1", tokenizer=codec)
        _, info = env.reset(seed=0)
        reward, terminated, infos = _play(env, [*codec.encode(info["target"][:20]), token])
        assert (reward, terminated, infos[-1]["correct"], infos[-1]["on_track"]) == (0.0, True, False, False)


def test_the_sync_vector_env_agrees_with_the_single_env(bpe):
    vector = gym.make_vec(
        "arith_gym/Addition-v0", num_envs=2, vectorization_mode="sync", comfort_digits=2, tokenizer=bpe
    )
    _, infos = vector.reset(seed=3)
    single = TaskEnv("Addition", comfort_digits=2, tokenizer=bpe)
    _, info = single.reset(seed=4)
    assert infos["problem"][1] == info["problem"]
    codec = TokenizerCodec(bpe)
    targets = [codec.encode(target) for target in infos["target"]]
    for step in range(len(targets[1])):
        actions = np.array([t[step] if step < len(t) else 0 for t in targets])
        _, rewards, terminated, _, infos = vector.step(actions)
        _, reward, ended, _, info = single.step(int(actions[1]))
        assert (rewards[1], terminated[1], infos["text"][1]) == (reward, ended, info["text"])
    assert (reward, ended) == (1.0, True)


def test_the_native_vector_env_names_the_mode_that_takes_a_tokenizer(bpe):
    with pytest.raises(ValueError, match="vectorization_mode='sync'"):
        gym.make_vec(
            "arith_gym/Addition-v0", num_envs=2, vectorization_mode="vector_entry_point", tokenizer=bpe
        )


def test_the_character_codec_is_the_character_table():
    codec = CharacterCodec()
    assert codec.piece(PAD_ID) is None and codec.piece(41) is None and codec.piece(3) == CHARACTERS[3]
    assert CharacterCodec(42).piece(41) == "*"
    np.testing.assert_array_equal(codec.encode("12+3"), arith_gym.encode("12+3"))


@given(seed=st.integers(0, 2**16), noise=st.floats(0, 0.3))
@settings(max_examples=10, deadline=None)
def test_the_tokenizer_vector_env_agrees_with_the_single_env(bpe, seed, noise):
    from arith_gym.tokenizer_vector_env import TokenizerVectorEnv

    codec = TokenizerCodec(bpe)
    vector = TokenizerVectorEnv(3, comfort_digits=3, split="plus1", tokenizer=codec)
    singles = [TaskEnv("Addition", comfort_digits=3, split="plus1", tokenizer=codec) for _ in range(3)]
    _, info = vector.reset(seed=seed)
    infos = [env.reset(seed=seed + i)[1] for i, env in enumerate(singles)]
    assert list(info["problem"]) == [env.problem for env in singles]
    rng, done = np.random.default_rng(seed), np.zeros(3, dtype=bool)
    while not done.all():
        actions = []
        for single in infos:
            ids = codec.encode(single["target"][len(single["text"]) :] or "\n")
            actions.append(int(rng.integers(0, 400)) if rng.random() < noise else int(ids[0]))
        _, rewards, terminated, truncated, info = vector.step(np.array(actions))
        for i, env in enumerate(singles):
            if done[i]:
                assert rewards[i] == 0.0 and not terminated[i]
                continue
            _, reward, ended, cut, infos[i] = env.step(actions[i])
            assert (rewards[i], terminated[i], truncated[i], info["text"][i]) == (
                reward,
                ended,
                cut,
                infos[i]["text"],
            )
            token = infos[i]["critical"]
            assert info["_critical"][i] == (token is not None)
            if token is not None:
                assert info["critical"]["position"][i] == token.position
            if ended or cut:
                done[i] = True
                assert info["_correct"][i] and info["correct"][i] == infos[i]["correct"]


def test_a_rollout_of_any_model_records_what_the_env_judged(bpe):
    import torch
    from conftest import tiny_llama

    from agents.lm.episodes import make_vector_env, model_codec
    from agents.rl.policy import LMPolicy
    from agents.rl.rollout import collect_rollout

    lm = tiny_llama(420)
    codec = model_codec(lm, bpe)
    env = make_vector_env(6, 3, "plus1", "Addition", tokenizer=codec)
    policy = LMPolicy(lm, temperature=1.0, value_hidden=(8,), vocab_size=420)
    rollout = collect_rollout(policy, lm, env, torch.Generator().manual_seed(0), seed=0)
    for row, sub_env in enumerate(env.envs):
        played = rollout.actions[row][rollout.mask[row]].tolist()
        written = "".join(codec.piece(token) or "" for token in played)
        assert written == sub_env._text  # the actions are the env's episode
        assert rollout.rewards[row].sum() == float(rollout.correct[row])
    assert torch.isfinite(rollout.reference.ref_logp).all()


def test_a_first_error_inside_a_token_that_covers_a_decision_is_critical_at_token_level(bpe):
    from arith_gym.task import error_kind

    codec = TokenizerCodec(bpe)
    task = get_task("Addition")
    problem = (3769, 7870)  # an operand of 4 digits: commas after the 3rd digit are decisions
    target, records = task.target(problem, 3)
    critical = {record[0] for record in records}
    # The BPE fuses a digit with the comma after it: the token starts before the decision.
    fused = [(start, end) for start, end in codec.offsets(target) if any(start < p < end for p in critical)]
    assert fused
    start, _ = fused[0]
    wrong = "0" if target[start] != "0" else "1"
    text = target[:start] + wrong  # the digit of that token goes wrong, not the comma itself
    assert error_kind(task, problem, 3, text) == "copy"  # character level: a copied digit
    assert error_kind(task, problem, 3, text, codec) == "critical"  # token level: the decision's token

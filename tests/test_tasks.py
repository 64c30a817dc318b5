"""The task family (arith_gym/task.py): one environment for every registered task, and addition unchanged."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import arith_gym
from arith_gym.env import AdditionEnv
from arith_gym.operands import is_heldout
from arith_gym.task import TASKS, AdditionTask, get_task, is_heldout_key, register_task
from arith_gym.task_env import TaskEnv
from arith_gym.tokenizer import CHARACTERS, VOCAB, encode

NEW_TASKS = ("Multiply", "MultiSum")


def test_the_character_table_is_append_only():
    assert CHARACTERS[: len(VOCAB)] == VOCAB and len(VOCAB) == 41
    assert CHARACTERS.index("*") == 41 and arith_gym.get_task("Multiply").vocab_size == 42
    assert get_task("Addition").vocab_size == get_task("MultiSum").vocab_size == 41


def test_worked_examples_of_the_format_page():
    multiply = get_task("Multiply")
    assert multiply.prompt((1234, 7)) + multiply.target((1234, 7), 3)[0] == (
        "Input:\n1234*7\nTarget:\n<scratch>\n"
        "4*7+0=28 , A->8 , C->2\n3*7+2=23 , A->3 , C->2\n2*7+2=16 , A->6 , C->1\n1*7+1=8 , A->8 , C->0\n"
        "C=0 , END\n</scratch>\n8 6 3 8\n"
    )
    multisum = get_task("MultiSum")
    assert multisum.prompt((12, 345, 7, 89)) + multisum.target((12, 345, 7, 89), 2)[0] == (
        "Input:\n012+345+007+089\nTarget:\n<scratch>\n"
        "2+5+7+9 , +0=23 , A->3 , C->2\n1+4+0+8 , +2=15 , A->5 , C->1\n0+3+0+0 , +1=4 , A->4 , C->0\n"
        "C=0 , END\n</scratch>\n4 5 3\n"
    )


def test_critical_tokens_are_the_decisions():
    text, records = get_task("Multiply").target((1234, 7), 3)
    assert [(text[p], line, index) for p, line, _, index, _ in records] == [("1", 4, 1)]  # line 4, not "C"
    text, records = get_task("MultiSum").target((12, 345, 7, 89), 2)
    # On every column line, the "+" before addends 3 and 4 (a model of 2 operands would close there).
    assert [(text[p], line, operand) for p, line, operand, _, _ in records] == [
        ("+", line, operand) for line in (1, 2, 3) for operand in (3, 4)
    ]
    assert (
        get_task("Multiply").target((123, 7), 3)[1] == [] and get_task("MultiSum").target((1, 2), 2)[1] == []
    )


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_makes_an_env_that_passes_the_checkers(name):
    env = gym.make(f"arith_gym/{name}-v0", comfort_digits=2, split="plus1")
    check_env(env.unwrapped, skip_render_check=True)
    vector = gym.make_vec(f"arith_gym/{name}-v0", num_envs=2, comfort_digits=2, split="plus1")
    observations, _ = vector.reset(seed=0)
    assert observations.shape == (2, *env.observation_space.shape)


@pytest.mark.parametrize("name", sorted(TASKS))
@given(
    seed=st.integers(0, 2**32 - 1),
    comfort=st.integers(2, 4),
    split=st.sampled_from(["comfort", "plus1", "plus2"]),
)
@settings(max_examples=25, deadline=None)
def test_playing_the_target_earns_one_on_every_task(name, seed, comfort, split):
    env = TaskEnv(name, comfort_digits=comfort, split=split)
    _, info = env.reset(seed=seed)
    decisions = 0
    for token in encode(info["target"]):
        _, reward, terminated, truncated, info = env.step(int(token))
        decisions += info["critical"] is not None
    assert terminated and not truncated and reward == 1.0 and info["correct"] and info["on_track"]
    assert decisions == len(env.task.target(env.problem, comfort)[1])
    if split != "comfort" and name != "Addition":
        assert decisions >= 1  # past the comfort zone the decisions are there


@pytest.mark.parametrize("name", NEW_TASKS)
def test_closing_at_the_comfort_zone_is_wrong(name):
    env = TaskEnv(name, comfort_digits=2, split="plus1")
    _, info = env.reset(seed=1)
    text, records = env.task.target(env.problem, 2)
    decision = records[0][0]
    wrong = {
        "Multiply": "C=0 , END\n</scratch>\n0\n",
        "MultiSum": " , +0=0 , A->0 , C->0\nC=0 , END\n</scratch>\n0\n",
    }
    for character in text[:decision] + wrong[name]:
        _, reward, terminated, _, info = env.step(CHARACTERS.index(character))
    assert terminated and reward == 0.0 and not info["correct"]


@given(st.integers(0, 10**12), st.integers(0, 10**12))
@settings(max_examples=200, deadline=None)
def test_addition_keys_hold_out_exactly_the_problems_they_did(a, b):
    assert is_heldout_key(AdditionTask().key((a, b))) == is_heldout(a, b)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_problem_sets_split_the_problems(name):
    task = get_task(name)
    rng = np.random.default_rng(0)
    train = [task.sample(rng, "plus1", 2, "train") for _ in range(200)]
    heldout = [task.sample(rng, "plus1", 2, "heldout") for _ in range(20)]
    assert not any(is_heldout_key(task.key(p)) for p in train)
    assert all(is_heldout_key(task.key(p)) for p in heldout)


@pytest.mark.parametrize("split", ["comfort", "plus1", "plus3"])
def test_addition_through_the_generic_env_plays_exactly_what_its_own_env_plays(split):
    rng = np.random.default_rng(7)
    for seed in range(6):
        own, generic = (
            AdditionEnv(comfort_digits=3, split=split),
            TaskEnv("Addition", comfort_digits=3, split=split),
        )
        obs_own, info_own = own.reset(seed=seed)
        obs_generic, info_generic = generic.reset(seed=seed)
        assert (info_own["a"], info_own["b"]) == info_generic["problem"]
        target = encode(info_own["target"])
        done = False
        for t in range(own.config.max_episode_steps):
            # The target, with a random wrong token now and then: both envs must agree throughout.
            action = int(target[t]) if t < len(target) and rng.random() > 0.05 else int(rng.integers(0, 41))
            step_own, step_generic = own.step(action), generic.step(action)
            assert np.array_equal(step_own[0], step_generic[0]) and step_own[1:4] == step_generic[1:4]
            for key in ("text", "target", "on_track", "critical", "correct", "result"):
                assert step_own[4].get(key) == step_generic[4].get(key), key
            done = step_own[2] or step_own[3]
            if done:
                break
        assert done


def test_a_task_of_your_own_registers_the_same_way():
    class Double:
        name = "DoubleTest"
        vocab_size = 42
        critical_kinds = ("line",)

        def sample(self, rng, split, comfort_digits, problem_set):
            return get_task("Multiply").sample(rng, split, comfort_digits, problem_set)[:1] + (2,)

        def check(self, problem):
            return get_task("Multiply").check(problem)

        def key(self, problem):
            return f"{problem[0]}*2"

        def prompt(self, problem):
            return get_task("Multiply").prompt(problem)

        def target(self, problem, comfort_digits):
            return get_task("Multiply").target(problem, comfort_digits)

        def answer(self, problem):
            return 2 * problem[0]

        def longest(self, split, comfort_digits):
            return get_task("Multiply").longest(split, comfort_digits)

    if "DoubleTest" not in TASKS:
        register_task(Double())
    env = gym.make("arith_gym/DoubleTest-v0", comfort_digits=2, split="comfort")
    _, info = env.reset(seed=0)
    assert info["problem"][1] == 2
    with pytest.raises(ValueError, match="already registered"):
        register_task(Double())
    with pytest.raises(ValueError, match="lacks the members"):
        register_task(object())
    with pytest.raises(ValueError, match="unknown task 'Nope'"):
        TaskEnv("Nope")


@pytest.mark.parametrize("name", sorted(TASKS))
@given(
    seed=st.integers(0, 2**16), split=st.sampled_from(["comfort", "plus1", "plus2"]), noise=st.floats(0, 0.2)
)
@settings(max_examples=10, deadline=None)
def test_single_and_vector_env_agree_on_every_task(name, seed, split, noise):
    """The vector env plays every task exactly as its single env, step by step (target tokens with
    some random ones mixed in; each sub-env i seeded seed + i)."""
    num_envs = 3
    vector = gym.make_vec(
        f"arith_gym/{name}-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        comfort_digits=2,
        split=split,
        autoreset_mode="Disabled",
    )
    singles = [TaskEnv(name, comfort_digits=2, split=split) for _ in range(num_envs)]
    _, vector_info = vector.reset(seed=seed)
    infos = [env.reset(seed=seed + i)[1] for i, env in enumerate(singles)]
    assert list(vector_info["problem"]) == [env.problem for env in singles]
    rng, done = np.random.default_rng(seed), np.zeros(num_envs, dtype=bool)
    kinds = get_task(name).critical_kinds
    while not done.all():
        actions = []
        for env, info in zip(singles, infos, strict=True):
            target = encode(info["target"])
            step = len(info["text"])
            token = int(target[step]) if step < len(target) else 0
            actions.append(int(rng.integers(0, env.task.vocab_size)) if rng.random() < noise else token)
        obs, rewards, terminated, truncated, vector_info = vector.step(np.array(actions))
        for i, env in enumerate(singles):
            if done[i]:
                continue
            single_obs, reward, ended, cut, infos[i] = env.step(actions[i])
            assert (rewards[i], terminated[i], truncated[i]) == (reward, ended, cut)
            assert (
                vector_info["text"][i] == infos[i]["text"]
                and vector_info["on_track"][i] == infos[i]["on_track"]
            )
            np.testing.assert_array_equal(obs[i][: len(single_obs)], single_obs)
            critical = infos[i]["critical"]
            assert vector_info["_critical"][i] == (critical is not None)
            if critical is not None:
                fields = {key: int(vector_info["critical"][key][i]) for key in ("position", "line", "index")}
                assert fields == {
                    "position": critical.position,
                    "line": critical.line,
                    "index": critical.index,
                }
                assert kinds[vector_info["critical"]["kind"][i]] == critical.kind
            if ended or cut:
                done[i] = True
                assert vector_info["correct"][i] == infos[i]["correct"]

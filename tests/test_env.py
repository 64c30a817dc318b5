"""The single environment AdditionEnv and its registration."""

from __future__ import annotations

import importlib
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import arith_gym
from arith_gym.env import AdditionEnv
from arith_gym.rules import EPISODE_STEP_SLACK
from arith_gym.scratchpad import MAX_OPERAND_DIGITS, critical_tokens, prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, TOKEN_TO_ID, VOCAB_SIZE, encode
from arith_gym.vector_env import AdditionVectorEnv

SPACE = TOKEN_TO_ID[" "]


def play(env: AdditionEnv, tokens: list[int]) -> list[tuple]:
    """Step ``tokens`` until the episode ends; the (obs, reward, terminated, truncated, info) of each step."""
    steps = []
    for token in tokens:
        steps.append(env.step(token))
        if steps[-1][2] or steps[-1][3]:
            break
    return steps


def wrong_result(a: int, b: int) -> str:
    """``target_text(a, b)`` with the result line's first digit changed."""
    target = target_text(a, b)
    cut = target.index("</scratch>\n") + len("</scratch>\n")
    first = target[cut]
    return target[:cut] + str((int(first) + 1) % 10 or 2) + target[cut + 1 :]


@pytest.mark.parametrize(("a", "b"), [(1234, 5678), (95, 8), (0, 0), (9999, 1), (7, 4321)])
def test_target_tokens_are_rewarded_at_the_final_newline(a: int, b: int) -> None:
    env = AdditionEnv()
    obs, info = env.reset(seed=0, options={"operands": (a, b)})
    assert info["text"] == "" and info["on_track"] and info["critical"] is None
    assert "correct" not in info
    steps = play(env, encode(target_text(a, b)).tolist())
    assert len(steps) == len(target_text(a, b))
    for _, reward, terminated, truncated, info in steps[:-1]:
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["on_track"] and "correct" not in info
    _, reward, terminated, truncated, info = steps[-1]
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["correct"] is True and info["result"] == a + b
    assert info["text"] == target_text(a, b)


@pytest.mark.parametrize(("mode", "wrong"), [("binary", 0.0), ("ternary", -1.0)])
def test_wrong_result_digit(mode: str, wrong: float) -> None:
    env = AdditionEnv(reward_mode=mode)
    env.reset(options={"operands": (1234, 5678)})
    text = wrong_result(1234, 5678)
    steps = play(env, encode(text).tolist())
    _, reward, terminated, truncated, info = steps[-1]
    assert (reward, terminated, truncated) == (wrong, True, False)
    assert info["correct"] is False and info["result"] == 7912
    assert len(steps) == len(text)
    cut = text.index("</scratch>\n") + len("</scratch>\n")
    assert all(step[4]["on_track"] for step in steps[:cut]) and not steps[cut][4]["on_track"]
    assert not any(step[4]["on_track"] for step in steps[cut:])


def test_only_the_result_line_is_judged() -> None:
    env = AdditionEnv()
    env.reset(options={"operands": (95, 8)})
    steps = play(env, encode("<scratch>\nTarget 1+1=3\n</scratch>\n1 0 3\n").tolist())
    assert steps[-1][1] == 1.0 and steps[-1][4]["correct"] and not steps[-1][4]["on_track"]
    # A newline before any "</scratch>\n" does not end the episode; the one after it does.
    env.reset(options={"operands": (95, 8)})
    steps = play(env, encode("\n\n</scratch\n</scratch>\n\n").tolist())
    assert steps[-1][2] and steps[-1][4]["result"] is None and steps[-1][1] == 0.0
    assert len(steps) == len("\n\n</scratch\n</scratch>\n\n")


@pytest.mark.parametrize(("mode", "wrong"), [("binary", 0.0), ("ternary", -1.0)])
def test_pad_ends_the_episode_as_wrong(mode: str, wrong: float) -> None:
    env = AdditionEnv(reward_mode=mode)
    obs, _ = env.reset(options={"operands": (12, 34)})
    tokens = encode(target_text(12, 34)[:5]).tolist()
    play(env, tokens)
    before = env._obs.copy()
    obs, reward, terminated, truncated, info = env.step(PAD_ID)
    assert (reward, terminated, truncated) == (wrong, True, False)
    assert info["text"] == target_text(12, 34)[:5]  # the pad is not added
    assert info["correct"] is False and info["result"] is None and not info["on_track"]
    assert (obs == before).all()


@pytest.mark.parametrize(("mode", "wrong"), [("binary", 0.0), ("ternary", -1.0)])
def test_truncation_at_max_episode_steps(mode: str, wrong: float) -> None:
    env = AdditionEnv(max_episode_steps=10, reward_mode=mode)
    env.reset(options={"operands": (1, 2)})
    steps = play(env, [SPACE] * 20)
    assert len(steps) == 10
    assert all(step[3] is False and step[1] == 0.0 for step in steps[:-1])
    _, reward, terminated, truncated, info = steps[-1]
    assert (reward, terminated, truncated) == (wrong, False, True)
    assert info["correct"] is False and info["result"] is None and info["text"] == " " * 10


def test_gym_make_max_episode_steps_is_gymnasiums_time_limit_not_ours() -> None:
    # Documented pitfall: the step limit given to gym.make goes to TimeLimit, never to the env.
    env = gym.make(arith_gym.ENV_ID, max_episode_steps=10, reward_mode="ternary")
    assert isinstance(env, gym.wrappers.TimeLimit) and env.unwrapped.config.max_episode_steps > 10
    env.reset(options={"operands": (1, 2)})
    steps = play(env, [SPACE] * 20)
    _, reward, terminated, truncated, info = steps[-1]
    assert len(steps) == 10 and (reward, terminated, truncated) == (0.0, False, True)
    assert "correct" not in info


def test_truncation_when_the_context_is_full() -> None:
    config = AdditionEnv().config
    env = AdditionEnv(context_length=config.max_prompt_length + 5)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        room = env.config.context_length - len(info["prompt"])
        steps = play(env, encode(info["target"]).tolist())
        assert len(steps) == room
        assert steps[-1][3] and not steps[-1][2] and steps[-1][1] == 0.0
        assert (steps[-1][0] != PAD_ID).all()


def test_forced_operands_must_fit() -> None:
    env = AdditionEnv(comfort_digits=3, split="plus1")
    env.reset(options={"operands": (9999, 9999)})  # the split's longest problem fits
    env.reset(options={"operands": (99999, 9)})  # longer operands fit while the text does
    with pytest.raises(ValueError, match="do not fit.*context_length=413"):
        env.reset(options={"operands": (10**12, 1)})
    # Only as much of the target as max_episode_steps allows has to fit.
    AdditionEnv(max_episode_steps=10).reset(options={"operands": (12, 34)})
    small = AdditionEnv(context_length=AdditionEnv().config.max_prompt_length + 5)
    with pytest.raises(ValueError, match="do not fit"):
        small.reset(options={"operands": (12, 34)})


@pytest.mark.parametrize("bad", [(-1, 2), (1.5, 2), (1,), "12", (True, 1), 5])
def test_bad_forced_operands(bad: object) -> None:
    env = AdditionEnv()
    with pytest.raises(ValueError, match="operands"):
        env.reset(options={"operands": bad})


def test_unknown_reset_option() -> None:
    with pytest.raises(ValueError, match="operand"):
        AdditionEnv().reset(options={"operand": (1, 2)})


def test_observation_layout() -> None:
    env = AdditionEnv()
    obs, info = env.reset(options={"operands": (95, 8)})
    prompt = encode(prompt_text(95, 8))
    assert obs.shape == (env.config.context_length,) and obs.dtype == np.int64
    assert (obs[: len(prompt)] == prompt).all() and (obs[len(prompt) :] == PAD_ID).all()
    tokens = encode("<scr").tolist()
    obs = play(env, tokens)[-1][0]
    assert (obs[len(prompt) : len(prompt) + 4] == tokens).all() and (obs[len(prompt) + 4 :] == PAD_ID).all()
    assert env.observation_space.contains(obs)


def test_info_fields_and_critical_records() -> None:
    a, b, n = 12345, 678, 3
    env = AdditionEnv(comfort_digits=n, split="plus2")
    _, info = env.reset(options={"operands": (a, b)})
    assert (info["a"], info["b"]) == (a, b)
    assert (info["prompt"], info["target"]) == (prompt_text(a, b), target_text(a, b))
    by_position = {t.position: t for t in critical_tokens(a, b, n)}
    steps = play(env, encode(target_text(a, b)).tolist())
    for position, (_, _, _, _, info) in enumerate(steps):
        assert info["critical"] == by_position.get(position)
        assert info["text"] == target_text(a, b)[: position + 1]
        assert (info["a"], info["b"]) == (a, b)
    # Off track, critical positions give no record.
    env.reset(options={"operands": (a, b)})
    tokens = encode(target_text(a, b)).tolist()
    tokens[3] = SPACE
    steps = play(env, tokens[: max(by_position) + 1])
    assert all(step[4]["critical"] is None for step in steps)
    assert not steps[-1][4]["on_track"]


@pytest.mark.parametrize("wrong", ["]", "pad"])
def test_a_wrong_decision_at_a_critical_token_is_labelled(wrong: str) -> None:
    """Closing the list early (or padding) at the critical comma is the decision that critical-token
    methods are about: the step carries the comma's record, and the text is off track after it."""
    a, b, n = 1234, 56, 3
    env = AdditionEnv(comfort_digits=n, split="plus1")
    env.reset(options={"operands": (a, b)})
    comma = critical_tokens(a, b, n)[0]
    assert comma.kind == "comma" and target_text(a, b)[comma.position] == ","
    play(env, encode(target_text(a, b))[: comma.position].tolist())
    _, _, terminated, _, info = env.step(PAD_ID if wrong == "pad" else int(encode(wrong)[0]))
    assert info["critical"] == comma and not info["on_track"]
    assert terminated == (wrong == "pad")
    if not terminated:  # the critical digit that follows is no longer a decision on track
        assert env.step(int(encode("4")[0]))[4]["critical"] is None


def test_same_seed_same_problems() -> None:
    def problems(seed: int) -> list[tuple[int, int]]:
        env = AdditionEnv(split="plus2")
        _, info = env.reset(seed=seed)
        found = [(info["a"], info["b"])]
        for _ in range(5):
            env.step(PAD_ID)
            _, info = env.reset()
            found.append((info["a"], info["b"]))
        return found

    assert problems(3) == problems(3)
    assert problems(3) != problems(4)


def test_defaults_follow_the_split() -> None:
    env = AdditionEnv(comfort_digits=4, split="plus2")
    longest = 10**6 - 1
    assert env.config.max_episode_steps == len(target_text(longest, longest)) + EPISODE_STEP_SLACK
    assert env.config.context_length == len(prompt_text(longest, longest)) + env.config.max_episode_steps
    assert env.config.reward_mode == "binary"
    assert AdditionEnv().config.split == "plus1" and AdditionEnv().config.comfort_digits == 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"comfort_digits": 0}, "comfort_digits"),
        ({"comfort_digits": True}, "comfort_digits"),
        ({"comfort_digits": 2.0}, "comfort_digits"),
        ({"split": "plus0"}, "split"),
        ({"split": "hard"}, "split"),
        ({"reward_mode": "unary"}, "reward_mode"),
        ({"context_length": 25}, "context_length"),  # longest prompt of N=3 plus1 is 25
        ({"context_length": 0}, "context_length"),
        ({"context_length": 30.0}, "context_length"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"render_mode": "rgb_array"}, "render_mode"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AdditionEnv(**kwargs)


def test_shortest_context_is_accepted() -> None:
    env = AdditionEnv(context_length=26)
    env.reset(seed=0)
    assert play(env, [SPACE] * 5)[-1][3]


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (-1, ValueError),
        (VOCAB_SIZE, ValueError),
        (np.int64(VOCAB_SIZE), ValueError),
        (1.0, TypeError),
        (np.float32(1), TypeError),
        ("1", TypeError),
        (True, TypeError),
        (np.bool_(True), TypeError),
        (np.array([1]), TypeError),
        (np.array(1.0), TypeError),
        (None, TypeError),
    ],
)
def test_bad_actions_raise(action: object, error: type) -> None:
    env = AdditionEnv()
    env.reset(seed=0)
    with pytest.raises(error, match="action"):
        env.step(action)


@pytest.mark.parametrize("action", [1, np.int64(1), np.int32(1), np.uint8(1), np.array(1)])
def test_integer_actions_are_accepted(action: object) -> None:
    env = AdditionEnv()
    env.reset(seed=0)
    assert env.step(action)[4]["text"] == " "


def test_step_before_reset_and_after_the_end() -> None:
    env = AdditionEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    env.step(PAD_ID)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    wrapped = gym.make(arith_gym.ENV_ID)
    with pytest.raises(gym.error.ResetNeeded):
        wrapped.step(0)


def test_env_checkers_pass(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(arith_gym.ENV_ID).unwrapped)
        check_env(gym.make(arith_gym.ENV_ID, render_mode="ansi", split="comfort").unwrapped)
        sb3_check_env(AdditionEnv(reward_mode="ternary"))
        sb3_check_env(gym.make(arith_gym.ENV_ID).unwrapped)


def test_render(capsys: pytest.CaptureFixture[str]) -> None:
    env = AdditionEnv(render_mode="ansi")
    env.reset(options={"operands": (95, 8)})
    env.step(TOKEN_TO_ID["<"])
    assert env.render() == prompt_text(95, 8) + "<"
    human = AdditionEnv(render_mode="human")
    human.reset(options={"operands": (95, 8)})
    assert human.render() is None
    assert capsys.readouterr().out == prompt_text(95, 8) + "\n"


def test_registration() -> None:
    spec = gym.spec(arith_gym.ENV_ID)
    assert spec.max_episode_steps is None
    assert spec.vector_entry_point == "arith_gym.vector_env:AdditionVectorEnv"
    importlib.reload(arith_gym)  # registering twice would warn or fail
    env = gym.make(arith_gym.ENV_ID, comfort_digits=2, split="plus3", reward_mode="ternary")
    assert env.unwrapped.config.comfort_digits == 2 and env.unwrapped.config.split == "plus3"
    _, info = env.reset(seed=1)
    assert max(len(str(info["a"])), len(str(info["b"]))) == 5


# ----------------------------------------------------------------------------- extreme arguments


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"comfort_digits": 10**4}, "comfort_digits=10000"),
        ({"comfort_digits": 10**6}, "comfort_digits=1000000"),
        ({"comfort_digits": 3000}, "comfort_digits=3000"),
        ({"split": "plus10000000"}, "split='plus10000000'"),
    ],
)
def test_sizes_beyond_the_maximum_are_refused_by_name(kwargs, named):
    with pytest.raises(ValueError, match=re.escape(named)) as error:
        AdditionEnv(**kwargs)
    assert str(MAX_OPERAND_DIGITS) in str(error.value)


def test_forced_operands_beyond_the_maximum_are_refused_by_name():
    env = AdditionEnv(comfort_digits=3, split="plus1")
    with pytest.raises(ValueError, match=r"operands\[0\] has more than 256 digits"):
        env.reset(options={"operands": (10**300, 1)})


def test_vector_env_step_names_a_bad_action_batch():
    env = AdditionVectorEnv(2, comfort_digits=1, split="plus1")
    env.reset(seed=0)
    for bad in (3, None):
        with pytest.raises(TypeError, match="actions must be an array or list of 2 integer token ids"):
            env.step(bad)

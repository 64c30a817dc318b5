"""The batched AdditionVectorEnv: equivalence with AdditionEnv, autoreset modes, seeding, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import arith_gym
from arith_gym import bench
from arith_gym.env import AdditionEnv
from arith_gym.operands import sample_operands
from arith_gym.scratchpad import prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, PAD_TOKEN, TOKEN_TO_ID, VOCAB, VOCAB_SIZE, encode
from arith_gym.vector_env import CRITICAL_FIELDS, CRITICAL_KIND_CODES, CRITICAL_KINDS, AdditionVectorEnv

SPACE = TOKEN_TO_ID[" "]


@dataclass
class Step:
    """What one env reports for one step, in a form both environments can be compared in."""

    obs: list[int]
    reward: float
    terminated: bool
    truncated: bool
    text: str
    on_track: bool
    critical: tuple[int, ...] | None
    correct: bool | None
    result: int | None


def single_steps(problem: tuple[int, int], actions: list[int], **kwargs: Any) -> list[Step]:
    """Play ``actions`` on an AdditionEnv until its episode ends."""
    env = AdditionEnv(**kwargs)
    env.reset(options={"operands": problem})
    steps = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        critical = info["critical"]
        if critical is not None:
            critical = (critical.position, critical.line, critical.operand, critical.index)
            critical += (CRITICAL_KIND_CODES[info["critical"].kind],)
        ended = terminated or truncated
        steps.append(
            Step(
                obs.tolist(),
                reward,
                terminated,
                truncated,
                info["text"],
                info["on_track"],
                critical,
                info["correct"] if ended else None,
                info["result"] if ended else None,
            )
        )
        if ended:
            break
    return steps


def vector_steps(
    problems: list[tuple[int, int]], scripts: list[list[int]], **kwargs: Any
) -> list[list[Step]]:
    """Play each env's script on one AdditionVectorEnv (autoreset off) until every episode ended.

    Also checks that a finished env ignores its actions: reward 0, no termination or
    truncation, observation and text unchanged.
    """
    n = len(problems)
    env = AdditionVectorEnv(n, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
    obs, _ = env.reset(options={"operands": problems})
    done = np.zeros(n, dtype=bool)
    steps: list[list[Step]] = [[] for _ in range(n)]
    for t in range(max(map(len, scripts))):
        actions = np.array([s[t] if t < len(s) else SPACE for s in scripts])
        before = obs
        obs, rewards, terminated, truncated, info = env.step(actions)
        for i in range(n):
            if done[i]:
                assert (rewards[i], terminated[i], truncated[i]) == (0.0, False, False)
                assert (obs[i] == before[i]).all() and info["text"][i] == steps[i][-1].text
                assert not info["_correct"][i] and not info["_critical"][i]
                continue
            critical = None
            if info["_critical"][i]:
                critical = tuple(int(info["critical"][field][i]) for field in CRITICAL_FIELDS)
            ended = bool(terminated[i] or truncated[i])
            assert info["_correct"][i] == info["_result"][i] == ended
            steps[i].append(
                Step(
                    obs[i].tolist(),
                    float(rewards[i]),
                    bool(terminated[i]),
                    bool(truncated[i]),
                    str(info["text"][i]),
                    bool(info["on_track"][i]),
                    critical,
                    bool(info["correct"][i]) if ended else None,
                    info["result"][i] if ended else None,
                )
            )
            done[i] |= ended
        if done.all():
            break
    return steps


def assert_equivalent(problems: list[tuple[int, int]], scripts: list[list[int]], **kwargs: Any) -> None:
    # Every script ends with a pad so that every episode ends.
    scripts = [[*script, PAD_ID] for script in scripts]
    vector = vector_steps(problems, scripts, **kwargs)
    for i, (problem, script) in enumerate(zip(problems, scripts, strict=True)):
        single = single_steps(problem, script, **kwargs)
        assert vector[i] == single, f"env {i}: {problem}, {script}"


def random_problems(rng: np.random.Generator, count: int, split: str = "plus1") -> list[tuple[int, int]]:
    return [sample_operands(rng, split, 3) for _ in range(count)]


def wrong_result_tokens(a: int, b: int) -> list[int]:
    target = target_text(a, b)
    cut = target.index("</scratch>\n") + len("</scratch>\n")
    digit = str((int(target[cut]) + 1) % 10 or 2)
    return encode(target[:cut] + digit + target[cut + 1 :]).tolist()


@pytest.mark.parametrize("reward_mode", ["binary", "ternary"])
def test_scripted_episodes_match_the_single_env(reward_mode: str) -> None:
    rng = np.random.default_rng(0)
    problems = random_problems(rng, 24)
    scripts = []
    for k, (a, b) in enumerate(problems):
        target = encode(target_text(a, b)).tolist()
        kind = k % 4
        if kind == 0:
            scripts.append(target)  # correct
        elif kind == 1:
            scripts.append(wrong_result_tokens(a, b))  # wrong result digit
        elif kind == 2:
            scripts.append(target[: int(rng.integers(0, len(target)))] + [PAD_ID])  # gives up
        else:
            scripts.append([int(x) for x in rng.integers(0, VOCAB_SIZE - 1, size=60)])  # noise
    assert_equivalent(problems, scripts, reward_mode=reward_mode)


def test_truncations_match_the_single_env() -> None:
    # Step limit: 30 tokens of a longer target.
    problems = random_problems(np.random.default_rng(1), 6)
    scripts = [encode(target_text(a, b)).tolist() for a, b in problems]
    assert_equivalent(problems, scripts, max_episode_steps=30, reward_mode="ternary")
    # Context limit: the 1-digit problems' targets fit 130 tokens, 200 spaces do not.
    problems = [(1, 2), (9, 9), (0, 5), (7, 3)]
    scripts = [encode(target_text(1, 2)).tolist(), [SPACE] * 200, [SPACE] * 200, [SPACE] * 120]
    assert_equivalent(problems, scripts, context_length=130)


def test_forced_problems_longer_than_the_split() -> None:
    # Prompt and target longer than any of plus1's: the str info arrays must widen, not cut.
    problems = [(10**7, 1), (1, 2)]
    scripts = [encode(target_text(*problem)).tolist() for problem in problems]
    assert_equivalent(problems, scripts, max_episode_steps=600)
    env = AdditionVectorEnv(2, max_episode_steps=600)
    _, info = env.reset(options={"operands": problems})
    assert info["prompt"][0] == prompt_text(10**7, 1) and info["target"][0] == target_text(10**7, 1)


_PIECES = ["</scratch>\n", "<", "</scr", "<</scratch>\n", "\n", " ", "1 0", "0", "</scratch>\n\n"]


@st.composite
def scripted_batch(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[list[int]], dict[str, Any]]:
    """A few problems and, per problem, a script mixing target prefixes, tricky pieces and noise."""
    seed = draw(st.integers(0, 2**32 - 1))
    count = draw(st.integers(1, 4))
    split = draw(st.sampled_from(["comfort", "plus1"]))
    problems = random_problems(np.random.default_rng(seed), count, split)
    alphabet = [token for token in VOCAB if token != PAD_TOKEN]
    scripts = []
    for a, b in problems:
        target = target_text(a, b)
        pieces = st.one_of(
            st.integers(0, len(target)).map(lambda k, t=target: t[:k]),
            st.sampled_from(_PIECES),
            st.lists(st.sampled_from(alphabet), max_size=6).map("".join),
        )
        tokens = encode("".join(draw(st.lists(pieces, max_size=6)))).tolist()
        if draw(st.booleans()):
            tokens.insert(draw(st.integers(0, len(tokens))), PAD_ID)
        scripts.append(tokens)
    kwargs = {"reward_mode": draw(st.sampled_from(["binary", "ternary"]))}
    if draw(st.booleans()):
        kwargs["max_episode_steps"] = draw(st.integers(1, 120))
    return problems, scripts, kwargs


@settings(max_examples=40, deadline=None)
@given(scripted_batch())
def test_random_scripts_match_the_single_env(batch: tuple) -> None:
    problems, scripts, kwargs = batch
    assert_equivalent(problems, scripts, **kwargs)


def test_critical_records_match_the_scratchpad() -> None:
    a, b = 12345, 678
    env = AdditionVectorEnv(2, comfort_digits=3, split="plus2")
    env.reset(options={"operands": [(a, b), (b, a)]})
    expected = {(t.position, t.line, t.operand, t.index, t.kind) for t in arith_gym.critical_tokens(a, b, 3)}
    found = set()
    for token in encode(target_text(a, b))[:-1]:
        _, _, _, _, info = env.step(np.array([token, token]))
        if info["_critical"][0]:
            record = [int(info["critical"][field][0]) for field in CRITICAL_FIELDS]
            found.add((*record[:4], CRITICAL_KINDS[record[4]]))
        assert not info["_critical"][1]  # its text left the track at the first digit, before any
    assert found == expected and len(found) == 6


def test_a_wrong_token_at_a_critical_position_is_labelled() -> None:
    a, b = 1234, 56
    env = AdditionVectorEnv(2, comfort_digits=3, split="plus1")
    env.reset(options={"operands": [(a, b), (a, b)]})
    comma = arith_gym.critical_tokens(a, b, 3)[0]
    for token in encode(target_text(a, b))[: comma.position]:
        env.step(np.array([token, token]))
    right, wrong = encode(",]")
    _, _, terminated, _, info = env.step(np.array([right, wrong]))
    assert info["_critical"].tolist() == [True, True] and info["on_track"].tolist() == [True, False]
    assert (info["critical"]["position"] == comma.position).all() and not terminated.any()


def test_next_step_autoreset() -> None:
    env = AdditionVectorEnv(3, split="comfort")
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = env.reset(seed=10)
    singles = [AdditionEnv(split="comfort") for _ in range(3)]
    for i, single in enumerate(singles):
        single_obs, single_info = single.reset(seed=10 + i)
        assert (obs[i] == single_obs).all() and info["a"][i] == single_info["a"]
    # Env 0 gives up, env 1 writes, env 2 writes.
    obs, rewards, terminated, truncated, info = env.step(np.array([PAD_ID, SPACE, SPACE]))
    assert terminated.tolist() == [True, False, False] and rewards.tolist() == [0.0, 0.0, 0.0]
    assert info["_correct"].tolist() == [True, False, False] and info["correct"][0] == np.False_
    assert info["result"][0] is None
    # Next step: env 0 ignores its action and starts the next problem of its generator.
    obs, rewards, terminated, truncated, info = env.step(np.array([SPACE, SPACE, SPACE]))
    singles[0].step(PAD_ID)
    single_obs, single_info = singles[0].reset()
    assert (obs[0] == single_obs).all()
    assert (rewards[0], terminated[0], truncated[0]) == (0.0, False, False)
    assert info["text"].tolist() == ["", "  ", "  "] and info["on_track"][0]
    assert (info["a"][0], info["b"][0]) == (single_info["a"], single_info["b"])
    assert info["prompt"][0] == single_info["prompt"] and info["target"][0] == single_info["target"]
    assert not info["_correct"].any()
    # And then it plays normally.
    _, _, _, _, info = env.step(np.array([SPACE, SPACE, SPACE]))
    assert info["text"].tolist() == [" ", "   ", "   "]


def test_same_step_autoreset() -> None:
    env = AdditionVectorEnv(2, autoreset_mode="SameStep")
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    env.reset(options={"operands": [(95, 8), (1, 2)]})
    target = encode(target_text(95, 8)).tolist()
    for token in target[:-1]:
        _, _, _, _, info = env.step(np.array([token, SPACE]))
        assert "final_obs" not in info
    final = env._obs[0].copy()
    final[len(prompt_text(95, 8)) + len(target) - 1] = target[-1]
    obs, rewards, terminated, truncated, info = env.step(np.array([target[-1], SPACE]))
    assert terminated.tolist() == [True, False] and rewards.tolist() == [1.0, 0.0]
    assert info["_final_obs"].tolist() == [True, False] and info["_final_info"].tolist() == [True, False]
    assert (info["final_obs"][0] == final).all() and info["final_obs"][1] is None
    final_info = info["final_info"]
    assert final_info["_correct"].tolist() == [True, False] and final_info["correct"][0]
    assert final_info["result"][0] == 103 and final_info["text"][0] == target_text(95, 8)
    assert final_info["_text"].tolist() == [True, False]
    # The returned observation and info are the next episode's.
    assert info["text"][0] == "" and not info["_correct"].any() and info["on_track"][0]
    prompt = encode(str(info["prompt"][0]))
    assert (obs[0, : len(prompt)] == prompt).all() and (obs[0, len(prompt) :] == PAD_ID).all()
    _, rewards, terminated, _, info = env.step(np.array([SPACE, SPACE]))
    assert not terminated.any() and info["text"][0] == " "


def test_disabled_autoreset_and_reset_mask() -> None:
    env = AdditionVectorEnv(3, autoreset_mode=AutoresetMode.DISABLED)
    obs, info = env.reset(seed=0, options={"operands": [(1, 2), None, (3, 4)]})
    assert (info["a"][0], info["b"][0], info["a"][2]) == (1, 2, 3)
    obs, _, terminated, _, _ = env.step(np.array([PAD_ID, SPACE, SPACE]))
    for _ in range(3):  # the finished env ignores anything, even another pad
        again, rewards, terminated, truncated, info = env.step(np.array([PAD_ID, SPACE, SPACE]))
        assert (rewards[0], terminated[0], truncated[0]) == (0.0, False, False)
        assert (again[0] == obs[0]).all() and info["text"][0] == ""
    with pytest.raises(ValueError, match=r"operands'\]\[1\]"):
        env.reset(options={"reset_mask": np.array([True, False, False]), "operands": [None, (5, 6), None]})
    mask = np.array([True, False, False])
    obs, info = env.reset(options={"reset_mask": mask, "operands": [(7, 8), None, None]})
    assert info["_a"].tolist() == [True, False, False] and info["a"][0] == 7
    assert info["text"][1] == "    "  # the other envs kept their episodes
    _, _, _, _, info = env.step(np.array([SPACE, SPACE, SPACE]))
    assert info["text"].tolist() == [" ", "     ", "     "]


def test_seeding_matches_single_envs_over_many_episodes() -> None:
    seed, n, episodes = 123, 4, 6
    env = AdditionVectorEnv(n, split="plus2")
    _, info = env.reset(seed=seed)
    seen = [[(info["a"][i], info["b"][i])] for i in range(n)]
    pads = np.full(n, PAD_ID)
    for _ in range(episodes - 1):
        env.step(pads)  # every episode ends ...
        _, _, _, _, info = env.step(pads)  # ... and the next one starts (the pad is ignored)
        for i in range(n):
            seen[i].append((info["a"][i], info["b"][i]))
    for i in range(n):
        single = AdditionEnv(split="plus2")
        _, info = single.reset(seed=seed + i)
        expected = [(info["a"], info["b"])]
        for _ in range(episodes - 1):
            single.step(PAD_ID)
            _, info = single.reset()
            expected.append((info["a"], info["b"]))
        assert seen[i] == expected
    # A list of seeds, and None (fresh entropy), work too.
    _, info = env.reset(seed=[seed + i for i in range(n)])
    assert [(info["a"][i], info["b"][i]) for i in range(n)] == [s[0] for s in seen]
    env.reset(seed=None)


def test_info_layout() -> None:
    env = AdditionVectorEnv(2)
    _, info = env.reset(options={"operands": [(10**3, 5), (99, 9999)]})
    assert info["a"].dtype == object and type(info["a"][0]) is int and info["b"][1] == 9999
    for key in ("prompt", "target", "text"):
        assert info[key].dtype.kind == "U" and info[key].shape == (2,)
    assert info["prompt"][1] == prompt_text(99, 9999) and info["target"][0] == target_text(1000, 5)
    assert set(info["critical"]) == set(CRITICAL_FIELDS)
    assert all(v.dtype == np.int64 and (v == -1).all() for v in info["critical"].values())
    for key in ("a", "b", "prompt", "target", "text", "on_track", "critical", "correct", "result"):
        assert info[f"_{key}"].dtype == np.bool_ and info[f"_{key}"].shape == (2,)
    assert set(CRITICAL_KINDS) == {"comma", "digit"}
    assert all(CRITICAL_KINDS[CRITICAL_KIND_CODES[kind]] == kind for kind in CRITICAL_KINDS)


def test_returned_data_is_never_shared() -> None:
    env = AdditionVectorEnv(3)
    calls = [env.reset(seed=0)]
    for _ in range(3):
        obs, _, _, _, info = env.step(np.array([PAD_ID, SPACE, SPACE]))
        calls.append((obs, info))
    for k, first in enumerate(calls):
        for second in calls[k + 1 :]:
            assert not data_shares_objects(first[0], second[0])
            assert not data_shares_objects(first[1], second[1])


def data_shares_objects(first: object, second: object) -> bool:
    """Whether two observations or info dicts share an array (in-place writes would leak)."""
    if isinstance(first, dict) and isinstance(second, dict):
        return any(data_shares_objects(first[key], second[key]) for key in first.keys() & second.keys())
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
        return np.shares_memory(first, second)
    return False


def test_make_vec() -> None:
    env = gym.make_vec(
        arith_gym.ENV_ID,
        num_envs=5,
        vectorization_mode="vector_entry_point",
        comfort_digits=2,
        split="plus1",
        reward_mode="ternary",
        autoreset_mode=AutoresetMode.DISABLED,
    )
    assert isinstance(env, AdditionVectorEnv)
    assert env.config.comfort_digits == 2 and env.config.reward_mode == "ternary"
    assert env.action_space == gym.spaces.MultiDiscrete([VOCAB_SIZE] * 5)
    assert env.observation_space.shape == (5, env.config.context_length)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, rewards, _, _, _ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and rewards.dtype == np.float64
    env.close()
    assert env.closed


def test_render() -> None:
    env = AdditionVectorEnv(2, render_mode="ansi")
    env.reset(options={"operands": [(1, 2), (3, 4)]})
    env.step(np.array([TOKEN_TO_ID["<"], SPACE]))
    assert env.render() == (prompt_text(1, 2) + "<", prompt_text(3, 4) + " ")


@pytest.mark.parametrize(
    ("actions", "error", "match"),
    [
        (np.array([1, 2]), ValueError, r"shape \(3,\)"),
        (np.array([[1, 2, 3]]), ValueError, "shape"),
        (np.array([1.0, 2.0, 3.0]), TypeError, "float64"),
        (np.array([True, False, True]), TypeError, "bool"),
        ([1, True, 2], TypeError, "bool"),
        (np.array([1, VOCAB_SIZE, 2]), ValueError, f"action {VOCAB_SIZE} of env 1"),
        (np.array([1, 2, -3]), ValueError, "action -3 of env 2"),
        (np.array(["1", "2", "3"]), TypeError, "integer"),
    ],
)
def test_bad_actions_raise(actions: object, error: type, match: str) -> None:
    env = AdditionVectorEnv(3)
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(actions)


def test_list_and_small_integer_actions_are_accepted() -> None:
    env = AdditionVectorEnv(3)
    env.reset(seed=0)
    assert env.step([SPACE, SPACE, SPACE])[4]["text"].tolist() == [" "] * 3
    assert env.step(np.array([SPACE] * 3, dtype=np.uint8))[4]["text"].tolist() == ["  "] * 3


def test_step_before_reset() -> None:
    with pytest.raises(gym.error.ResetNeeded):
        AdditionVectorEnv(2).step(np.array([1, 1]))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"reset_mask": [True, False]}, "reset_mask"),
        ({"reset_mask": np.array([1, 0])}, "reset_mask"),
        ({"reset_mask": np.array([False, False])}, "at least one"),
        ({"operands": [(1, 2)]}, "2 entries"),
        ({"operands": [(1, 2), (-1, 2)]}, "operands"),
        ({"seeds": 1}, "unknown reset option"),
    ],
)
def test_bad_reset_options(options: dict, match: str) -> None:
    env = AdditionVectorEnv(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.reset(options=options)


def test_bad_seeds_and_first_masked_reset() -> None:
    env = AdditionVectorEnv(2)
    with pytest.raises(gym.error.ResetNeeded):
        env.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed="1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": True}, "num_envs"),
        ({"num_envs": 2, "autoreset_mode": "sometimes"}, "autoreset_mode"),
        ({"num_envs": 2, "split": "plus0"}, "split"),
        ({"num_envs": 2, "context_length": 3}, "context_length"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AdditionVectorEnv(**kwargs)


def test_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--steps", "2000", "--num-envs", "8", "--split", "comfort"])
    out = capsys.readouterr().out
    assert "single env" in out and "vector env (   8 envs)" in out and "ratio" in out

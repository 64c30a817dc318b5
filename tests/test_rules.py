"""The task's rules written once (arith_gym.rules): the result-line automaton and the judge."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from arith_gym.rules import (
    ENV_ID,
    RESULT_LINE_ENDED,
    RESULT_LINE_NEXT,
    RESULT_LINE_START,
    RESULT_LINE_TABLE,
    EnvConfig,
    judge,
)
from arith_gym.scratchpad import SCRATCH_CLOSE, target_text
from arith_gym.tokenizer import encode


def ended_by_automaton(text: str) -> list[bool]:
    state, ended = RESULT_LINE_START, []
    for token in encode(text).tolist():
        state = RESULT_LINE_NEXT[state][token]
        ended.append(state == RESULT_LINE_ENDED)
    return ended


def ended_by_definition(text: str) -> list[bool]:
    """The rule as docs/format.md states it: the first newline after the first ``</scratch>\\n``."""
    start = text.find(SCRATCH_CLOSE)
    if start < 0:
        return [False] * len(text)
    end = text.find("\n", start + len(SCRATCH_CLOSE))
    return [end >= 0 and i >= end for i in range(len(text))]


def test_env_id():
    assert ENV_ID == "arith_gym/Addition-v0"


def test_the_target_ends_at_its_last_character():
    text = target_text(95, 8)
    ended = ended_by_automaton(text)
    assert ended[-1] and not any(ended[:-1])


@given(st.lists(st.sampled_from(["<", "/", "s", "c", "r", "a", "t", "h", ">", "\n", "1", " "]), max_size=60))
def test_the_automaton_is_the_rule(pieces):
    text = "".join(pieces)
    assert ended_by_automaton(text) == ended_by_definition(text)


def test_the_list_and_array_tables_agree():
    assert np.array_equal(np.array(RESULT_LINE_NEXT), RESULT_LINE_TABLE)


def test_judge():
    wrong = EnvConfig.from_kwargs(reward_mode="ternary").wrong_reward
    assert judge(target_text(95, 8), 103, wrong) == (True, 103, 1.0)
    assert judge("<scratch>\n</scratch>\n1 0 4\n", 103, wrong) == (False, 104, -1.0)
    assert judge("no result", 103, 0.0) == (False, None, 0.0)

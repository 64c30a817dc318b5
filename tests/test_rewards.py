"""The reward functions score any text and never raise; they follow the env's rule to the letter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("trl")

from agents.trl.task import addition_reward, completion_text  # noqa: E402
from arith_gym.rules import episode_length, judge  # noqa: E402
from arith_gym.scratchpad import target_text  # noqa: E402
from arith_gym.tokenizer import PAD_TOKEN, VOCAB, encode  # noqa: E402

TARGET = target_text(123, 4567)  # 4690
ANSWER = "4690"
ALPHABET = "".join(token for token in VOCAB if token != PAD_TOKEN)


@pytest.mark.parametrize(
    "text", ["hello! 12", "é", "\t", "", "x" * 100_000, TARGET[:-1], TARGET.replace("4 6 9 0", "4 6 9 1")]
)
def test_foreign_empty_long_and_wrong_texts_score_zero(text):
    assert addition_reward([text], [ANSWER]) == [0.0]


def test_a_right_result_line_followed_by_anything_scores_one_as_in_the_env():
    for junk in ("", "é", "hello! 12\n", "7 7\n", "\t\u0000", PAD_TOKEN * 3):
        assert addition_reward([TARGET + junk], [ANSWER]) == [1.0]


def test_none_and_chat_messages_are_texts_other_values_are_one_line_errors():
    chat = [{"role": "assistant", "content": TARGET}]
    assert addition_reward([None, chat, {"content": TARGET}], [ANSWER] * 3) == [0.0, 1.0, 1.0]
    with pytest.raises(TypeError, match="cannot score a completion of type int"):
        completion_text(7)
    with pytest.raises(ValueError, match="answer 'four' is not an integer"):
        addition_reward([TARGET], ["four"])


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_no_text_raises(text):
    assert addition_reward([text, TARGET + text], [ANSWER, ANSWER]) in ([0.0, 1.0], [1.0, 1.0])


middles = st.text(alphabet=ALPHABET, max_size=40)


@given(
    middles,
    st.sampled_from(["", "</scratch>\n"]),
    middles,
    st.sampled_from(["4 6 9 0", "4690", "4 6 9"]),
    middles,
)
@settings(max_examples=300, deadline=None)
def test_the_text_rule_equals_the_envs_token_rule(before, close, between, result, after):
    """On texts the env can play, the reward equals the env's: cut at the episode's end, then judged."""
    text = before + close + between + result + "\n" + after
    length = episode_length(encode(text).tolist())
    env_reward = 0.0 if length is None else judge(text[:length], int(ANSWER), 0.0)[2]
    assert addition_reward([text], [ANSWER]) == [env_reward]

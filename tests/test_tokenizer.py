"""The fixed character vocabulary: contents, order, encode/decode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_gym.scratchpad import prompt_text, target_text
from arith_gym.tokenizer import (
    CHARACTERS,
    ID_TO_BYTE,
    PAD_ID,
    PAD_TOKEN,
    TOKEN_TO_ID,
    VOCAB,
    VOCAB_SIZE,
    decode,
    encode,
)

OPERAND = st.integers(min_value=0, max_value=10**40 - 1)

# The order is frozen: a token id must mean the same thing in every release.
FROZEN_VOCAB = (
    "\n", " ", "+", ",", "-", "/", ":", "<", "=", ">",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    "A", "C", "D", "E", "I", "N", "T", "[", "]",
    "a", "c", "e", "g", "h", "n", "p", "r", "s", "t", "u",
    "<pad>",
)  # fmt: skip


def test_vocab_is_frozen() -> None:
    assert VOCAB == FROZEN_VOCAB
    assert VOCAB_SIZE == len(VOCAB) == 41
    assert PAD_ID == VOCAB.index(PAD_TOKEN) == VOCAB_SIZE - 1
    assert all(TOKEN_TO_ID[token] == i for i, token in enumerate(VOCAB))


def test_vocab_is_exactly_the_format_characters_plus_pad() -> None:
    rng = np.random.default_rng(0)
    produced: set[str] = set()
    for _ in range(300):
        a, b = (int(rng.integers(0, 10 ** int(rng.integers(1, 12)))) for _ in range(2))
        produced |= set(prompt_text(a, b) + target_text(a, b))
    assert produced == set(VOCAB) - {PAD_TOKEN}
    assert PAD_TOKEN not in produced


@settings(max_examples=200, deadline=None)
@given(OPERAND, OPERAND)
def test_round_trip(a: int, b: int) -> None:
    text = prompt_text(a, b) + target_text(a, b)
    ids = encode(text)
    assert ids.dtype == np.int64 and len(ids) == len(text)
    assert decode(ids) == text
    assert decode(ids.tolist()) == text
    assert ID_TO_BYTE[ids].tobytes().decode("ascii") == text


@pytest.mark.parametrize(("text", "char"), [("12x", "'x'"), ("1+é", "'é'"), ("a\tb", "'\\t'"), ("?", "'?'")])
def test_unknown_character_is_named(text: str, char: str) -> None:
    with pytest.raises(ValueError, match=char.replace("\\", "\\\\")):
        encode(text)


def test_pad_decoding() -> None:
    ids = [*encode("1 2"), PAD_ID]
    assert decode(ids) == "1 2<pad>"
    assert decode(ids, skip_pad=True) == "1 2"
    assert decode([]) == ""


@pytest.mark.parametrize("bad", [-1, len(CHARACTERS), 1000])
def test_decode_rejects_ids_outside_the_vocabulary(bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        decode([1, bad])


def test_ids_past_the_addition_vocabulary_are_the_other_tasks_characters() -> None:
    assert decode([VOCAB_SIZE]) == "*" and encode("*").tolist() == [VOCAB_SIZE]

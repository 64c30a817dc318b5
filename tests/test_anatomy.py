"""Error kinds of a first wrong token (arith_gym/anatomy.py) on hand-built wrong texts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arith_gym.anatomy import ERROR_KINDS, error_kind, first_error, position_kinds
from arith_gym.scratchpad import critical_mask, target_text

A, B, N = 1234, 56, 3
TARGET = target_text(A, B)  # its first line: "[1,2,3,4] + [5,6] , A=[] , C=0 , 4+6+0=10 , A->0 , C->1"


def _wrong(old: str, new: str, count: int = 1) -> str:
    """The target with the first ``count`` occurrences of ``old`` replaced (a sampled failure)."""
    assert old in TARGET
    return TARGET.replace(old, new, count)


@pytest.mark.parametrize(
    "text, kind",
    [
        (_wrong("[1,2,3,4]", "[1,2,3]"), "critical"),  # closes the list at the critical comma
        (_wrong("[1,2,3,4]", "[1,2,4]"), "copy"),  # drops a digit of the operand
        (_wrong("[5,6]", "[5,5]"), "copy"),
        (_wrong("A->0 , C->1", "A->0 , C->0"), "carry"),  # the carry out of 4+6+0
        (_wrong("4+6+0=10", "4+6+0=11"), "carry"),  # the sum
        (_wrong("</scratch>\n1 2 9 0", "</scratch>\n1 2 9 1"), "result"),  # a wrong result digit
        (_wrong("<scratch>", "<scrotch>"), "format"),
        (TARGET[:-3], "result"),  # cut short inside the result line
    ],
)
def test_error_kind_of_hand_built_wrong_texts(text, kind):
    assert error_kind(A, B, N, text) == kind


def test_a_right_text_has_no_error():
    assert first_error(A, B, TARGET) is None and error_kind(A, B, N, TARGET) is None


def test_the_kinds_by_hand_on_the_first_line():
    kinds = position_kinds(A, B, N)
    line = TARGET.index("[1,2,3,4]")
    codes = "".join(
        {"critical": "!", "copy": "c", "carry": "k", "result": "r", "format": "."}[k] for k in kinds
    )
    # "[1,2,3" copied, ",4" the critical continuation, "]" copied; then " + " and "[5,6]".
    assert codes[line : line + 17] == "cccccc!!c...ccccc"
    assert codes[TARGET.index("=10") + 1 : TARGET.index("=10") + 3] == "kk"


@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6), n=st.integers(1, 6))
def test_every_target_character_has_a_kind_and_criticals_match_the_spec(a, b, n):
    kinds = position_kinds(a, b, n)
    target = target_text(a, b)
    assert len(kinds) == len(target) and set(kinds) <= set(ERROR_KINDS)
    assert ((kinds == "critical") == critical_mask(a, b, n, len(target))).all()
    digits_only = {ch for ch, kind in zip(target, kinds, strict=True) if kind in ("carry", "result")}
    assert digits_only <= set("0123456789 ")

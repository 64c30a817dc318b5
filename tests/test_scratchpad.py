"""The text format of docs/format.md: worked examples, arithmetic, critical tokens."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_gym.scratchpad import (
    CRITICAL_KIND_CODES,
    CRITICAL_KINDS,
    SCRATCH_CLOSE,
    SCRATCH_OPEN,
    CriticalToken,
    check_operand,
    critical_tokens,
    parse_result,
    prompt_text,
    target_and_critical,
    target_text,
)

# Copied verbatim from the spec's worked examples.
EXAMPLE_1234_5678 = """Input:
1234+5678
Target:
<scratch>
[1,2,3,4] + [5,6,7,8] , A=[] , C=0 , 4+8+0=12 , A->2 , C->1
[1,2,3] + [5,6,7] , A=[2] , C=1 , 3+7+1=11 , A->1 , C->1
[1,2] + [5,6] , A=[1,2] , C=1 , 2+6+1=9 , A->9 , C->0
[1] + [5] , A=[9,1,2] , C=0 , 1+5+0=6 , A->6 , C->0
[] + [] , A=[6,9,1,2] C=0 , END
</scratch>
6 9 1 2
"""

EXAMPLE_95_8 = """Input:
95+8
Target:
<scratch>
[9,5] + [8] , A=[] , C=0 , 5+8+0=13 , A->3 , C->1
[9] + [] , A=[3] , C=1 , 9+0+1=10 , A->0 , C->1
[] + [] , A=[0,3] C=1 , END
</scratch>
1 0 3
"""

OPERAND = st.integers(min_value=0, max_value=10**40 - 1)
DIGIT_LINE = re.compile(
    r"\[(?P<l1>[0-9,]*)\] \+ \[(?P<l2>[0-9,]*)\] , A=\[(?P<A>[0-9,]*)\] , C=(?P<C>[01]) , "
    r"(?P<n1>[0-9])\+(?P<n2>[0-9])\+(?P<c>[01])=(?P<s>[0-9]+) , A->(?P<a>[0-9]) , C->(?P<carry>[01])"
)
CLOSING_LINE = re.compile(r"\[\] \+ \[\] , A=\[(?P<A>[0-9,]*)\] C=(?P<C>[01]) , END")


def _digits(listed: str) -> list[int]:
    return [int(d) for d in listed.split(",")] if listed else []


def _lines(a: int, b: int) -> list[str]:
    """The scratchpad lines of ``target_text(a, b)`` between the tags, without newlines."""
    target = target_text(a, b)
    assert target.startswith(SCRATCH_OPEN)
    body, result = target[len(SCRATCH_OPEN) :].split(SCRATCH_CLOSE)
    assert result.endswith("\n") and result.count("\n") == 1
    return body.split("\n")[:-1]


@pytest.mark.parametrize(("a", "b", "expected"), [(1234, 5678, EXAMPLE_1234_5678), (95, 8, EXAMPLE_95_8)])
def test_worked_examples_exact_text(a: int, b: int, expected: str) -> None:
    assert prompt_text(a, b) + target_text(a, b) == expected
    assert parse_result(target_text(a, b)) == a + b


def test_small_cases() -> None:
    assert target_text(0, 0) == (
        "<scratch>\n"
        "[0] + [0] , A=[] , C=0 , 0+0+0=0 , A->0 , C->0\n"
        "[] + [] , A=[0] C=0 , END\n"
        "</scratch>\n"
        "0\n"
    )
    assert prompt_text(0, 7) == "Input:\n0+7\nTarget:\n"


@settings(max_examples=200, deadline=None)
@given(OPERAND, OPERAND)
def test_result_line_states_the_sum(a: int, b: int) -> None:
    target = target_text(a, b)
    assert parse_result(target) == a + b
    result_line = target[target.index(SCRATCH_CLOSE) + len(SCRATCH_CLOSE) : -1]
    assert result_line == " ".join(str(a + b))


@settings(max_examples=200, deadline=None)
@given(OPERAND, OPERAND)
def test_every_line_is_correct_arithmetic(a: int, b: int) -> None:
    lines = _lines(a, b)
    left, right, produced, carry = _digits(",".join(str(a))), _digits(",".join(str(b))), [], 0
    assert len(lines) == max(len(str(a)), len(str(b))) + 1
    for line in lines[:-1]:
        match = DIGIT_LINE.fullmatch(line)
        assert match, line
        assert _digits(match["l1"]) == left and _digits(match["l2"]) == right
        assert _digits(match["A"]) == produced[::-1] and int(match["C"]) == carry
        n1, n2, c, s = (int(match[k]) for k in ("n1", "n2", "c", "s"))
        assert (n1, n2, c) == ((left or [0])[-1], (right or [0])[-1], carry)
        assert s == n1 + n2 + c
        assert (int(match["a"]), int(match["carry"])) == (s % 10, s // 10)
        produced.append(s % 10)
        carry = s // 10
        left, right = left[:-1], right[:-1]
    assert not left and not right
    closing = CLOSING_LINE.fullmatch(lines[-1])
    assert closing, lines[-1]
    assert _digits(closing["A"]) == produced[::-1] and int(closing["C"]) == carry


def _expected_critical(a: int, b: int, n: int) -> set[tuple[int, int, int, int, str]]:
    """(position, line, operand, index, kind) found by reading the target text's lines."""
    expected = set()
    start = len(SCRATCH_OPEN)
    for line_number, line in enumerate(_lines(a, b)[:-1], start=1):
        right_bracket = line.index("] + [") + len("] + ")
        for operand, bracket in ((1, 0), (2, right_bracket)):
            listed = line[bracket + 1 : line.index("]", bracket)]
            for k in range(n + 1, len(_digits(listed)) + 1):
                digit = start + bracket + 2 * k - 1
                expected.add((digit - 1, line_number, operand, k - n, "comma"))
                expected.add((digit, line_number, operand, k - n, "digit"))
        start += len(line) + 1
    return expected


@settings(max_examples=200, deadline=None)
@given(OPERAND, OPERAND, st.integers(min_value=1, max_value=8))
def test_critical_tokens_point_at_the_described_characters(a: int, b: int, n: int) -> None:
    target = target_text(a, b)
    tokens = critical_tokens(a, b, n)
    assert [t.position for t in tokens] == sorted(t.position for t in tokens)
    assert {(t.position, t.line, t.operand, t.index, t.kind) for t in tokens} == _expected_critical(a, b, n)
    for token in tokens:
        # Operand list of this line: the operand's digits minus the (line - 1) already processed.
        operand = str(a if token.operand == 1 else b)
        digits = operand[: len(operand) - token.line + 1]
        if token.kind == "comma":
            assert target[token.position] == ","
            assert target[token.position + 1] == digits[n + token.index - 1]
        else:
            assert target[token.position] == digits[n + token.index - 1]
            assert target[token.position - 1] == ","
    # Exactly 2 (m - N) per long list per line.
    for line_number in {t.line for t in tokens}:
        for operand, value in ((1, a), (2, b)):
            m = len(str(value)) - line_number + 1
            count = sum(1 for t in tokens if t.line == line_number and t.operand == operand)
            assert count == 2 * max(m - n, 0)


def test_critical_tokens_of_a_known_case() -> None:
    # 12345 + 678 with N=3: line 1 holds [1,2,3,4,5] (two past N), line 2 [1,2,3,4] (one past).
    tokens = critical_tokens(12345, 678, 3)
    target = target_text(12345, 678)
    assert [(t.line, t.operand, t.index, t.kind, target[t.position]) for t in tokens] == [
        (1, 1, 1, "comma", ","),
        (1, 1, 1, "digit", "4"),
        (1, 1, 2, "comma", ","),
        (1, 1, 2, "digit", "5"),
        (2, 1, 1, "comma", ","),
        (2, 1, 1, "digit", "4"),
    ]
    assert critical_tokens(999, 999, 3) == []


@pytest.mark.parametrize("bad", [-1, 1.5, "12", None, True, 2.0])
def test_bad_operands_raise(bad: object) -> None:
    for call in (
        lambda: prompt_text(bad, 1),
        lambda: target_text(1, bad),
        lambda: critical_tokens(bad, 1, 3),
        lambda: check_operand(bad),
    ):
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_comfort_digits_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="comfort_digits"):
        critical_tokens(1, 2, bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("<scratch>\n[] + [] , A=[1] C=0 , END\n", None),  # no </scratch>
        ("</scratch>\n1 0 3", None),  # result line not finished
        ("</scratch>\n1 0 3\n", 103),
        ("</scratch>\n1 0 3\ngarbage", 103),  # only the first line after the tag counts
        ("</scratch>\n0\n", 0),
        ("</scratch>\n0 7\n", None),  # leading zero
        ("</scratch>\n1 a\n", None),  # letters
        ("</scratch>\n\n", None),  # empty line
        ("</scratch>\n \n", None),  # only a space
        ("</scratch>\n12\n", 12),  # spaces are removed, not required
        ("x</scratch>\n5\n</scratch>\n6\n", 5),  # the first tag counts
        ("</scratch>5\n", None),  # tag without its newline
    ],
)
def test_parse_result_edge_cases(text: str, expected: int | None) -> None:
    assert parse_result(text) == expected


# A slow, line-by-line reading of the spec, kept here only as an oracle for the one-pass
# implementation (target_and_critical, under target_text and critical_tokens).


def _reference_list(digits: list[int]) -> str:
    return "[" + ",".join(map(str, digits)) + "]"


def _reference_lines(a: int, b: int) -> tuple[list[str], list[int], int]:
    """The digit lines, the result digits (least significant first) and the final carry."""
    left, right = [int(ch) for ch in str(a)], [int(ch) for ch in str(b)]
    produced: list[int] = []
    carry = 0
    lines = []
    while left or right:
        n1 = left[-1] if left else 0
        n2 = right[-1] if right else 0
        total = n1 + n2 + carry
        lines.append(
            f"{_reference_list(left)} + {_reference_list(right)} , A={_reference_list(produced[::-1])} , "
            f"C={carry} , {n1}+{n2}+{carry}={total} , A->{total % 10} , C->{total // 10}\n"
        )
        produced.append(total % 10)
        carry = total // 10
        left, right = left[:-1], right[:-1]
    return lines, produced, carry


def reference_target_text(a: int, b: int) -> str:
    lines, produced, carry = _reference_lines(a, b)
    closing = f"[] + [] , A={_reference_list(produced[::-1])} C={carry} , END\n"
    result_digits = ([carry] if carry else []) + produced[::-1]
    result_line = " ".join(map(str, result_digits)) + "\n"
    return SCRATCH_OPEN + "".join(lines) + closing + SCRATCH_CLOSE + result_line


def reference_critical_tokens(a: int, b: int, n: int) -> list[CriticalToken]:
    lines, _, _ = _reference_lines(a, b)
    tokens: list[CriticalToken] = []
    line_start = len(SCRATCH_OPEN)
    left_len, right_len = len(str(a)), len(str(b))
    for line_number, line in enumerate(lines, start=1):
        right_bracket = line.index(" + [") + len(" + ")
        for operand, bracket, length in ((1, 0, left_len), (2, right_bracket, right_len)):
            # Digit k (1-based) of a list "[d1,d2,...]" sits at offset 2k-1, its comma at 2k-2.
            for index in range(1, length - n + 1):
                digit_offset = bracket + 2 * (n + index) - 1
                for kind, offset in (("comma", digit_offset - 1), ("digit", digit_offset)):
                    tokens.append(CriticalToken(line_start + offset, line_number, operand, index, kind))
        left_len, right_len = max(left_len - 1, 0), max(right_len - 1, 0)
        line_start += len(line)
    return tokens


def _check_against_reference(a: int, b: int, n: int) -> None:
    expected_text, expected_tokens = reference_target_text(a, b), reference_critical_tokens(a, b, n)
    text, records = target_and_critical(a, b, n)
    assert text == expected_text
    assert records == [
        (t.position, t.line, t.operand, t.index, CRITICAL_KIND_CODES[t.kind]) for t in expected_tokens
    ]
    assert target_text(a, b) == expected_text
    assert critical_tokens(a, b, n) == expected_tokens


# Digit count first, so that short and long operands are both common.
SIZED_OPERAND = st.integers(1, 40).flatmap(lambda d: st.integers(10 ** (d - 1) if d > 1 else 0, 10**d - 1))


@settings(max_examples=400, deadline=None)
@given(SIZED_OPERAND, SIZED_OPERAND, st.integers(min_value=1, max_value=6))
def test_target_and_critical_match_the_reference(a: int, b: int, n: int) -> None:
    _check_against_reference(a, b, n)


@pytest.mark.parametrize(
    ("a", "b", "n"),
    [
        (0, 0, 1),
        (0, 0, 3),
        (9999, 9999, 3),
        (9999, 1, 3),
        (5, 99999, 2),
        (10**12, 1, 3),
        (999, 1, 1),
        (10**39, 10**40 - 1, 6),
        (1234, 5678, 3),
        (95, 8, 1),
    ],
)
def test_target_and_critical_edge_cases(a: int, b: int, n: int) -> None:
    _check_against_reference(a, b, n)
    _check_against_reference(b, a, n)


def test_critical_records_and_tokens_agree() -> None:
    assert CRITICAL_KINDS == ("comma", "digit")
    assert {kind: CRITICAL_KINDS[code] for kind, code in CRITICAL_KIND_CODES.items()} == {
        "comma": "comma",
        "digit": "digit",
    }
    _, records = target_and_critical(12345, 678, 3)
    # "<scratch>\n" is 10 characters: line 1's "[1,2,3,4,5]" has ",4" at 16-17 and ",5" at 18-19.
    assert records[:4] == [(16, 1, 1, 1, 0), (17, 1, 1, 1, 1), (18, 1, 1, 2, 0), (19, 1, 1, 2, 1)]
    assert [CriticalToken.from_record(r) for r in records] == critical_tokens(12345, 678, 3)
    assert CriticalToken.from_record((17, 1, 1, 1, 1)) == CriticalToken(17, 1, 1, 1, "digit")

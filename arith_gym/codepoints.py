"""Texts as rows of a uint32 code-point table, the vector environment's string storage.

A row holds a text's code points followed by zeros: viewed as dtype ``U{w}`` it is the
string (numpy ``str`` arrays are UCS-4 and drop trailing NULs), so turning the whole table
into a ``str`` array for ``info`` is one copy, not a per-character conversion.
"""

from __future__ import annotations

import numpy as np

from arith_gym.tokenizer import ID_TO_BYTE, PAD_ID

ID_TO_CODE = ID_TO_BYTE.astype(np.uint32)
"""A token's code point (the pad token, never written into a text, is 0)."""
BYTE_TO_ID = np.zeros(256, dtype=np.int64)
_TEXT_IDS = np.flatnonzero(np.arange(len(ID_TO_BYTE)) != PAD_ID)  # every id but the pad's
BYTE_TO_ID[ID_TO_BYTE[_TEXT_IDS]] = _TEXT_IDS
"""An ASCII byte's token id; only ever applied to text the task's format produced."""


def strings(codes: np.ndarray, width: int) -> np.ndarray:
    """The rows of code-point table ``codes`` as a new str array of dtype ``U{width}``.

    ``width`` (the longest string) is less than the table's width, so the copy is of a
    column slice, which numpy does row by row in its own copy loop. That is deliberate:
    a whole-table copy of this size (tens to hundreds of KB) goes to a single memcpy,
    which on the benchmark machine (AMD EPYC under KVM, glibc 2.36, ``rep movsb`` for
    that size range) ran 5-10x slower than the row-by-row copy.
    """
    width = max(width, 1)
    return codes[:, :width].copy().view(f"U{width}")[:, 0]


def store_codes(codes: np.ndarray, i: int, text: bytes) -> np.ndarray:
    """Write ASCII ``text`` into row ``i`` of the code-point table (its tail already zero).

    Widened first if the row could not keep a spare zero column (a forced problem longer
    than the split's longest).
    """
    if len(text) >= codes.shape[1]:
        codes = np.pad(codes, ((0, 0), (0, len(text) + 1 - codes.shape[1])))
    codes[i, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return codes


def store_str(array: np.ndarray, i: int, value: str) -> np.ndarray:
    """Set ``array[i] = value``, widening the fixed-width str array first if needed.

    numpy would silently cut a string longer than the dtype's width.
    """
    if len(value) > array.dtype.itemsize // 4:
        array = array.astype(f"U{len(value)}")
    array[i] = value
    return array

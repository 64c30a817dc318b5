"""The fixed character vocabulary: one token per character.

The order is fixed forever (a token id means the same thing in every release): the 41 tokens of
the addition task (:data:`VOCAB`: the characters its scratchpad format can produce in ASCII
order, then the padding token, which the format never produces), then the characters other tasks
added (:data:`EXTRA_CHARACTERS`), append-only: a new task's new characters get new ids after the
existing ones, so every shipped model (41 tokens) and every test stays valid. A task's vocabulary
is a prefix of :data:`CHARACTERS` (:attr:`arith_gym.task.Task.vocab_size`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PAD_TOKEN = "<pad>"
VOCAB: tuple[str, ...] = (
    "\n", " ", "+", ",", "-", "/", ":", "<", "=", ">",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    "A", "C", "D", "E", "I", "N", "T", "[", "]",
    "a", "c", "e", "g", "h", "n", "p", "r", "s", "t", "u",
    PAD_TOKEN,
)  # fmt: skip
PAD_ID = VOCAB.index(PAD_TOKEN)
VOCAB_SIZE = len(VOCAB)
"""The addition task's vocabulary size (the shipped models' 41)."""
EXTRA_CHARACTERS: tuple[str, ...] = ("*",)
"""Characters added after the addition vocabulary (ids from 41 on), append-only: ``*`` (multiply)."""
CHARACTERS: tuple[str, ...] = VOCAB + EXTRA_CHARACTERS
"""Every token id's text, in id order."""
TOKEN_TO_ID: dict[str, int] = {token: i for i, token in enumerate(CHARACTERS)}

# Every character token is one ASCII byte, so text <-> ids is a byte-table lookup.
_BYTE_TO_ID = np.full(256, -1, dtype=np.int64)
for _token, _id in TOKEN_TO_ID.items():
    if _token != PAD_TOKEN:
        _BYTE_TO_ID[ord(_token)] = _id
ID_TO_BYTE = np.array([ord(t) if t != PAD_TOKEN else 0 for t in CHARACTERS], dtype=np.uint8)


def encode(text: str) -> np.ndarray:
    """Token ids (int64) of ``text``, one per character.

    Raises:
        ValueError: if ``text`` holds a character outside the vocabulary (named in the message).
    """
    # Non-ASCII characters become "?", which is not in the vocabulary either.
    raw = text.encode("ascii", errors="replace")
    ids = _BYTE_TO_ID[np.frombuffer(raw, dtype=np.uint8)]
    unknown = ids < 0
    if unknown.any():
        raise ValueError(f"character {text[int(unknown.argmax())]!r} is not in the arith_gym vocabulary")
    return ids


def decode(ids: Iterable[int] | np.ndarray, *, skip_pad: bool = False) -> str:
    """The text of token ``ids``; the pad token reads ``<pad>`` unless ``skip_pad``.

    Raises:
        ValueError: if an id is outside ``0..len(CHARACTERS)-1``.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    outside = (ids < 0) | (ids >= len(CHARACTERS))
    if outside.any():
        raise ValueError(f"token id {ids[outside][0]} is outside the vocabulary (0..{len(CHARACTERS) - 1})")
    if skip_pad:
        ids = ids[ids != PAD_ID]
    elif (ids == PAD_ID).any():
        return "".join(CHARACTERS[i] for i in ids)
    return ID_TO_BYTE[ids].tobytes().decode("ascii")

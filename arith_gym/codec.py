"""Codecs: how an environment's token ids map to text.

The environment judges *text*: a step appends the text of the token played, and the episode is
on track while the text is a prefix of the target. A codec says what each token id writes:

- :class:`CharacterCodec` (the default): one character per token, exactly the ids of
  :data:`arith_gym.tokenizer.CHARACTERS` (the shipped models' vocabulary).
- :class:`TokenizerCodec`: any Hugging Face tokenizer (``transformers`` or ``tokenizers``; this
  module imports neither, it only calls the object's ``encode`` and ``decode``), e.g. a byte-level
  BPE whose tokens write several characters (``"8,6]"``). Tokenization is not unique: the
  canonical encoding of the target and a character-by-character path to the same text earn the
  same reward, because only the text is judged.

A token with no text (padding, end of sequence, any special token, an id outside the vocabulary,
a piece of a multi-byte UTF-8 character) ends the episode as wrong; nothing a policy plays raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from arith_gym import tokenizer as characters

REPLACEMENT = "\ufffd"
"""What a byte-level decoder writes for an incomplete UTF-8 sequence: such a token has no text."""


@runtime_checkable
class Codec(Protocol):
    """What an environment needs of a tokenizer."""

    vocab_size: int
    """Actions are ids ``0..vocab_size-1`` (a model's output size, which may exceed the tokenizer's)."""

    def encode(self, text: str) -> np.ndarray:
        """The canonical token ids (int64) of ``text`` (no special tokens added)."""
        ...

    def piece(self, token: int) -> str | None:
        """The text token ``token`` writes, or None if it writes none (it then ends the episode)."""
        ...


class CharacterCodec:
    """One character per token: the ids of :data:`arith_gym.tokenizer.CHARACTERS`, the pad token
    (and any id past the vocabulary) writing nothing."""

    def __init__(self, vocab_size: int = characters.VOCAB_SIZE) -> None:
        if not 0 < vocab_size <= len(characters.CHARACTERS):
            raise ValueError(f"vocab_size must be in 1..{len(characters.CHARACTERS)}, got {vocab_size}")
        self.vocab_size = vocab_size

    def encode(self, text: str) -> np.ndarray:
        return characters.encode(text)

    def piece(self, token: int) -> str | None:
        if token == characters.PAD_ID or not 0 <= token < self.vocab_size:
            return None
        return characters.CHARACTERS[token]


class TokenizerCodec:
    """A Hugging Face tokenizer as a codec.

    Args:
        tokenizer: a ``transformers`` tokenizer or a ``tokenizers.Tokenizer``.
        vocab_size: the action space (default: the tokenizer's full vocabulary, added tokens
            included); a model's embedding matrix may be larger: ids without a token write nothing.
    """

    def __init__(self, tokenizer: Any, vocab_size: int | None = None) -> None:
        if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode")):
            raise TypeError(f"tokenizer must have encode and decode, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self._fast = hasattr(tokenizer, "get_vocab_size")  # a tokenizers.Tokenizer
        known = tokenizer.get_vocab_size(with_added_tokens=True) if self._fast else len(tokenizer)
        self.vocab_size = int(known if vocab_size is None else vocab_size)
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
        special = _special_ids(tokenizer, self._fast)
        # A token's text is decoded after an anchor token: decoders that drop a leading space at
        # the start of a text (SentencePiece's "▁") then keep it, as they do mid-text.
        anchor = self.encode("0").tolist()[-1:]
        prefix = self._decode(anchor)
        self._pieces: list[str | None] = []
        for token in range(self.vocab_size):
            text = None if token in special or token >= known else self._decode([*anchor, token])
            ok = text is not None and text.startswith(prefix or "") and REPLACEMENT not in text
            self._pieces.append(text[len(prefix or "") :] or None if ok else None)

    def _decode(self, ids: list[int]) -> str | None:
        if self._fast:
            return self.tokenizer.decode(ids, skip_special_tokens=False)
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def encode(self, text: str) -> np.ndarray:
        if self._fast:
            ids: Sequence[int] = self.tokenizer.encode(text, add_special_tokens=False).ids
        else:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        return np.asarray(ids, dtype=np.int64)

    def piece(self, token: int) -> str | None:
        return self._pieces[token] if 0 <= token < self.vocab_size else None

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """The character span of each token of :meth:`encode` (for teacher forcing: which tokens
        cover a critical character)."""
        spans, start = [], 0
        for token in self.encode(text).tolist():
            piece = self.piece(token) or ""
            spans.append((start, start + len(piece)))
            start += len(piece)
        return spans


def _special_ids(tokenizer: Any, fast: bool) -> set[int]:
    if fast:
        return {token for token, added in tokenizer.get_added_tokens_decoder().items() if added.special}
    return set(getattr(tokenizer, "all_special_ids", ()))


def as_codec(tokenizer: Any, vocab_size: int) -> Codec:
    """``tokenizer`` as a codec: None gives the :class:`CharacterCodec` of ``vocab_size`` ids, a codec
    is returned as it is, anything else is wrapped in a :class:`TokenizerCodec`."""
    if tokenizer is None:
        return CharacterCodec(vocab_size)
    if isinstance(tokenizer, Codec):
        return tokenizer
    return TokenizerCodec(tokenizer)

"""One-token-at-a-time decoding of a batch of prompts with the transformers KV cache.

Prompts of different lengths are left-padded so that every row's next token sits in the
last column; the attention mask hides the padding and the position ids count real tokens
only, so a row's logits do not depend on how much padding its batch needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import transformers
from packaging.version import Version
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from arith_gym.tokenizer import PAD_ID

CACHE_KEYWORD = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"
"""The forward keyword (and output field) of a KV cache: transformers 5.24 renamed
``past_key_values`` to ``cache`` (the old name warns on every call there and goes in 5.40)."""


def left_pad(prompts: Sequence[np.ndarray], device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """``input_ids``, ``attention_mask`` and ``position_ids`` of left-padded ``prompts``."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("left_pad needs at least one prompt, each with at least one token")
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), PAD_ID, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.as_tensor(prompt, dtype=torch.long)
        attention[row, width - len(prompt) :] = 1
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids.to(device), attention.to(device), positions.to(device)


class _GrowingLayer(DynamicLayer):
    """A KV-cache layer that appends in place into a buffer with spare room.

    transformers' ``DynamicLayer`` concatenates the whole cache with every new token, so a
    T-token rollout copies O(T^2) data; this buffer doubles when full instead (O(T) copies).
    """

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.length, self.key_buffer, self.value_buffer = 0, None, None
        end = self.length + key_states.shape[-2]
        if self.key_buffer is None or end > self.key_buffer.shape[-2]:
            self._grow(key_states, max(end, 2 * end if self.key_buffer is not None else end + 256))
        self.key_buffer[..., self.length : end, :] = key_states
        self.value_buffer[..., self.length : end, :] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[..., :end, :], self.value_buffer[..., :end, :]
        return self.keys, self.values

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the batch rows ``index`` (in that order)."""
        self.key_buffer = self.key_buffer.index_select(0, index)
        self.value_buffer = self.value_buffer.index_select(0, index)
        self.keys = self.key_buffer[..., : self.length, :]
        self.values = self.value_buffer[..., : self.length, :]

    def _grow(self, like: torch.Tensor, capacity: int) -> None:
        shape = (*like.shape[:-2], capacity, like.shape[-1])
        keys, values = like.new_empty(shape), like.new_empty(shape)
        if self.key_buffer is not None:
            keys[..., : self.length, :] = self.key_buffer[..., : self.length, :]
            values[..., : self.length, :] = self.value_buffer[..., : self.length, :]
        self.key_buffer, self.value_buffer = keys, values


class CachedDecoder:
    """Feeds a causal LM one new token per row per call, keeping its KV cache.

    ``start(prompts)`` runs the prompts and returns the outputs at their last token;
    each ``step(tokens)`` appends one token per row and returns the outputs there. Rows that
    are finished may be fed anything: their outputs are simply ignored by the caller, or
    :meth:`keep` drops them (attention over the cache is most of a step's cost, row by row).
    Works for any transformers causal LM; for GPT-2,
    :class:`~agents.lm.gpt2_decoding.GPT2Decoder` gives the same outputs faster
    (:func:`~agents.lm.gpt2_decoding.cached_decoder` picks).
    """

    cache_layer: type[DynamicLayer] = _GrowingLayer
    """The transformers cache layer this decoder fills (a subclass may need another layout)."""

    def __init__(self, model: PreTrainedModel | torch.nn.Module) -> None:
        self.model = model
        self.cache: Cache | None = None
        self.attention: torch.Tensor | None = None
        self.next_position: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    @torch.no_grad()
    def branches(cls, model: PreTrainedModel, context: np.ndarray, lengths: np.ndarray) -> CachedDecoder:
        """A decoder whose row r holds ``context[:lengths[r]]``, ready for :meth:`step`.

        The shared context runs once and its KV cache is copied to every row; the attention
        mask hides what lies past a row's own length (a hole, as left padding is), and the
        position ids go on from each row's length. For many continuations of one text.
        """
        decoder = cls(model)
        device = decoder.device
        shared = Cache(layer_class_to_replicate=cls.cache_layer)
        model(
            input_ids=torch.as_tensor(context, device=device)[None], use_cache=True, **{CACHE_KEYWORD: shared}
        )
        decoder.cache = Cache(layer_class_to_replicate=cls.cache_layer)
        rows = len(lengths)
        for index, layer in enumerate(shared.layers):
            keys, values = layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1)
            decoder.cache.update(keys, values, index)
        lengths_t = torch.as_tensor(lengths, device=device)
        decoder.attention = (torch.arange(len(context), device=device)[None] < lengths_t[:, None]).long()
        decoder.next_position = lengths_t
        return decoder

    def start(self, prompts: Sequence[np.ndarray]):
        input_ids, self.attention, positions = left_pad(prompts, self.device)
        self.cache = Cache(layer_class_to_replicate=self.cache_layer)
        self.next_position = positions[:, -1] + 1
        return self._forward(input_ids, positions)

    def step(self, tokens: torch.Tensor):
        if self.cache is None:
            raise RuntimeError("call start(prompts) before step(tokens)")
        ones = torch.ones((len(tokens), 1), dtype=self.attention.dtype, device=self.device)
        self.attention = torch.cat([self.attention, ones], dim=1)
        positions = self.next_position[:, None]
        self.next_position = self.next_position + 1
        return self._forward(tokens.view(-1, 1).to(self.device), positions)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only rows ``index`` (in that order); the next :meth:`step` takes a token for each."""
        for layer in self.cache.layers:
            layer.keep(index)
        self.attention, self.next_position = self.attention[index], self.next_position[index]

    def _forward(self, input_ids: torch.Tensor, positions: torch.Tensor):
        return self.model(
            input_ids=input_ids,
            attention_mask=self.attention,
            position_ids=positions,
            use_cache=True,
            **{CACHE_KEYWORD: self.cache},
        )


class NaiveDecoder(CachedDecoder):
    """Same interface as :class:`CachedDecoder`, but re-runs the whole context every token.

    This is what a policy without a KV cache (the paper's code, stable-baselines3) does; it
    exists to validate the cached decoder and to measure what the cache saves.
    """

    def start(self, prompts: Sequence[np.ndarray]):
        self.input_ids, self.attention, self.positions = left_pad(prompts, self.device)
        return self._full_forward()

    def step(self, tokens: torch.Tensor):
        tokens = tokens.view(-1, 1).to(self.device)
        self.input_ids = torch.cat([self.input_ids, tokens], dim=1)
        self.attention = torch.cat([self.attention, torch.ones_like(tokens)], dim=1)
        self.positions = torch.cat([self.positions, self.positions[:, -1:] + 1], dim=1)
        return self._full_forward()

    def keep(self, index: torch.Tensor) -> None:
        self.input_ids, self.attention = self.input_ids[index], self.attention[index]
        self.positions = self.positions[index]

    def _full_forward(self):
        return self.model(
            input_ids=self.input_ids,
            attention_mask=self.attention,
            position_ids=self.positions,
            use_cache=False,
        )


class RowTracker:
    """Which rows of a batch a decoder still holds, as their episodes end.

    A step over a batch costs about as much per row, finished or not; dropping the finished
    rows once a quarter of the held ones have ended (each drop copies the cache once) skips
    most of that. :meth:`full` spreads the held rows' outputs back over the whole batch, so that
    sampling still draws from every row (a row's draw depends only on its own probabilities
    and the generator's place in the stream): the live rows get the tokens of a decoder that
    never drops a row, their outputs up to float rounding (a smaller batch may take another
    matmul kernel: 3e-8 on values in the tests). ``share=None`` never drops one.
    """

    def __init__(self, batch: int, device: torch.device | str, share: float | None = 0.25) -> None:
        self.rows = torch.arange(batch, device=device)
        self.batch, self.share = batch, share

    def full(self, held: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """``held`` (one entry per held row) as a batch-sized tensor, ``fill`` for the dropped rows."""
        if len(self.rows) == self.batch:
            return held
        out = held.new_full((self.batch, *held.shape[1:]), fill)
        out[self.rows] = held
        return out

    def drop_finished(self, decoder: CachedDecoder, done: torch.Tensor) -> torch.Tensor:
        """Drop the held rows whose ``done`` (a bool per batch row) is set, if enough are; returns
        the batch rows the decoder holds, the ones its next :meth:`CachedDecoder.step` takes."""
        held_done = done[self.rows]
        if self.share is not None and held_done.sum() >= max(1, self.share * len(self.rows)):
            index = (~held_done).nonzero().squeeze(1)
            decoder.keep(index)
            self.rows = self.rows[index]
        return self.rows


GREEDY = 0.0
"""The temperature that means greedy decoding (argmax), as in most LM sampling APIs."""


def choose_tokens(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Tokens sampled from ``softmax(logits / T)``, or the argmax at ``temperature`` :data:`GREEDY` (0).

    Raises:
        ValueError: a temperature that is not a number >= 0.
    """
    if temperature == GREEDY:
        return logits.argmax(dim=-1)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, or 0 for greedy decoding, got {temperature}")
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

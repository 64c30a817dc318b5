"""One-token GPT-2 steps over a KV cache laid out for the CPU's memory traffic.

A step of batched decoding reads every held row's cached keys and values in every layer,
about 2 flops per float read, so on a CPU the rollout's speed is that of the read. The
transformers cache appends into ``[B, H, capacity, d]`` buffers: the slices read per row and
head are then separated by unused capacity, and a batched matmul over such gapped memory runs
at about half the speed of one over contiguous memory on this project's machine (measured:
examples/kv_layout_bench.py, docs/benchmarks.md; likely the hardware prefetcher restarting at
every gap).

:class:`GPT2Decoder` keeps each layer's cache in two parts instead: ``settled``, a contiguous
``[B, H, M, d]`` tensor, and ``recent``, a small ``[B, H, S, d]`` buffer that takes one
column per step and is folded into ``settled`` (one copy) once full. Attention scores both
parts and normalises them in one softmax. The step itself runs GPT-2's block with the model's
own modules (layer norms, projections, activation), without transformers' per-call
machinery: same function, same weights, outputs equal to the transformers path up to float
rounding (tested to 1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from transformers import GPT2LMHeadModel, GPT2Model
from transformers.cache_utils import DynamicLayer
from transformers.modeling_outputs import CausalLMOutput

from agents.lm.decoding import CachedDecoder

RECENT_COLUMNS = 32
"""Columns of a layer's ``recent`` buffer: it is folded into ``settled`` every this many steps
(one copy of the layer's cache). 16, 32 and 64 gave rollouts within the machine's noise."""


@dataclass(frozen=True)
class GPT2Parts:
    """What :class:`GPT2Decoder` runs: the GPT-2 ``body`` and the ``head`` that turns the new
    token's final hidden states ``[B, C]`` into the model's output (``.logits`` ``[B, 1, V]``,
    and whatever else the model returns, e.g. a policy's values)."""

    body: GPT2Model
    head: Callable[[torch.Tensor], Any]


def gpt2_parts(model: torch.nn.Module) -> GPT2Parts | None:
    """The parts of ``model`` if :class:`GPT2Decoder` can run it exactly, else None.

    A model opts in with a ``decode_parts()`` method (the RL policy does: logits and values);
    a plain ``GPT2LMHeadModel`` is recognised. Anything else, or a GPT-2 whose configuration the
    step does not reproduce (dropout, cross-attention, re-ordered or layer-scaled attention),
    gets None, and the transformers path.
    """
    hook = getattr(model, "decode_parts", None)
    if hook is not None:
        return hook()
    if type(model) is GPT2LMHeadModel and supports(model.transformer):
        return GPT2Parts(model.transformer, partial(_lm_head_output, model))
    return None


def _lm_head_output(model: GPT2LMHeadModel, hidden: torch.Tensor) -> CausalLMOutput:
    return CausalLMOutput(logits=model.lm_head(hidden)[:, None])


def supports(body: torch.nn.Module) -> bool:
    """Whether :meth:`GPT2Decoder.step` computes what ``body``'s forward computes."""
    if type(body) is not GPT2Model:
        return False
    config = body.config
    return (
        config.attn_pdrop == config.resid_pdrop == config.embd_pdrop == 0.0
        and not config.add_cross_attention
        and config.scale_attn_weights
        and not config.scale_attn_by_inverse_layer_idx
        and not config.reorder_and_upcast_attn
    )


class GPT2Decoder(CachedDecoder):
    """:class:`~agents.lm.decoding.CachedDecoder`'s interface and outputs, for GPT-2, faster.

    ``start`` and ``branches`` run the prompts through the model as the parent does, then move
    the cache into the two-part layout; ``step`` and ``keep`` work on that layout. Use
    :func:`cached_decoder` to get this class where it applies and the parent elsewhere.
    """

    # The prompts' cache is written once and then settled: transformers' own layer leaves it
    # contiguous, where the parent's growing buffer would reserve room that is never used.
    cache_layer = DynamicLayer

    def __init__(self, model: torch.nn.Module, recent_columns: int = RECENT_COLUMNS) -> None:
        super().__init__(model)
        parts = gpt2_parts(model)
        if parts is None:
            raise ValueError(f"GPT2Decoder cannot run {type(model).__name__}; use cached_decoder(model)")
        if isinstance(recent_columns, bool) or not isinstance(recent_columns, int) or recent_columns < 1:
            raise ValueError(f"recent_columns must be a positive integer, got {recent_columns!r}")
        self.parts, self.recent_columns = parts, recent_columns
        self.settled: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # set by start/branches
        config = parts.body.config
        self.heads, self.head_size = config.n_head, config.n_embd // config.n_head
        self.scale = 1.0 / math.sqrt(self.head_size)

    def start(self, prompts: Sequence[np.ndarray]):
        out = super().start(prompts)
        self._settle()
        return out

    @classmethod
    def branches(cls, model: torch.nn.Module, context: np.ndarray, lengths: np.ndarray) -> GPT2Decoder:
        decoder = super().branches(model, context, lengths)
        decoder._settle()
        return decoder

    def _settle(self) -> None:
        """Move the transformers cache into the two-part layout; the mask becomes additive."""
        self.settled = [(layer.keys.contiguous(), layer.values.contiguous()) for layer in self.cache.layers]
        keys = self.settled[0][0]
        shape = (keys.shape[0], self.heads, self.recent_columns, self.head_size)
        self.recent = [(keys.new_empty(shape), keys.new_empty(shape)) for _ in self.settled]
        self.filled = 0  # columns of ``recent`` in use
        zeros = torch.zeros(self.attention.shape, dtype=keys.dtype, device=keys.device)
        self.settled_mask = zeros.masked_fill(self.attention == 0, -math.inf)[:, None, None, :]
        # The transformers cache and mask are no longer kept up to date.
        self.cache, self.attention = None, None

    @torch.no_grad()
    def step(self, tokens: torch.Tensor):
        if self.settled is None:
            raise RuntimeError("call start(prompts) before step(tokens)")
        body, rows = self.parts.body, len(tokens)
        positions = self.next_position
        self.next_position = positions + 1
        hidden = body.wte(tokens.view(-1).to(self.device)) + body.wpe(positions)
        column = self.filled
        for block, (settled_keys, settled_values), (recent_keys, recent_values) in zip(
            body.h, self.settled, self.recent, strict=True
        ):
            query, key, value = block.attn.c_attn(block.ln_1(hidden)).split(body.embed_dim, dim=-1)
            recent_keys[:, :, column] = key.view(rows, self.heads, self.head_size)
            recent_values[:, :, column] = value.view(rows, self.heads, self.head_size)
            recent_keys, recent_values = recent_keys[:, :, : column + 1], recent_values[:, :, : column + 1]
            query = query.view(rows, self.heads, 1, self.head_size) * self.scale
            attended = two_part_attention(
                query, (settled_keys, settled_values), (recent_keys, recent_values), self.settled_mask
            )
            hidden = hidden + block.attn.c_proj(attended.view(rows, -1))
            hidden = hidden + block.mlp(block.ln_2(hidden))
        self.filled += 1
        if self.filled == self.recent_columns:
            self._fold()
        return self.parts.head(body.ln_f(hidden))

    def _fold(self) -> None:
        """Append the full ``recent`` buffers to ``settled`` (one copy per layer)."""
        self.settled = [
            (torch.cat([keys, recent_keys], dim=2), torch.cat([values, recent_values], dim=2))
            for (keys, values), (recent_keys, recent_values) in zip(self.settled, self.recent, strict=True)
        ]
        mask = self.settled_mask
        self.settled_mask = torch.cat([mask, mask.new_zeros((*mask.shape[:-1], self.recent_columns))], dim=-1)
        self.filled = 0

    def keep(self, index: torch.Tensor) -> None:
        """Keep only rows ``index`` (in that order); the next :meth:`step` takes a token for each."""
        select = lambda pairs: [(k.index_select(0, index), v.index_select(0, index)) for k, v in pairs]  # noqa: E731
        self.settled, self.recent = select(self.settled), select(self.recent)
        self.settled_mask = self.settled_mask.index_select(0, index)
        self.next_position = self.next_position[index]


def two_part_attention(
    query: torch.Tensor,
    settled: tuple[torch.Tensor, torch.Tensor],
    recent: tuple[torch.Tensor, torch.Tensor],
    settled_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """One new token's attention ``[B, H, 1, d]`` over keys and values held in two parts.

    ``query`` is already scaled; ``settled`` and ``recent`` are (keys, values) pairs of shape
    ``[B, H, M, d]`` and ``[B, H, R, d]``; ``settled_mask`` (additive, broadcast to
    ``[B, H, 1, M]``) hides padding in the settled part. Both parts go through one softmax.
    """
    (settled_keys, settled_values), (recent_keys, recent_values) = settled, recent
    settled_scores = torch.matmul(query, settled_keys.transpose(-1, -2))
    if settled_mask is not None:
        settled_scores = settled_scores.add_(settled_mask)
    recent_scores = torch.matmul(query, recent_keys.transpose(-1, -2))
    weights = torch.softmax(torch.cat([settled_scores, recent_scores], dim=-1), dim=-1)
    split = settled_keys.shape[-2]
    attended = torch.matmul(weights[..., :split], settled_values)
    return attended.add_(torch.matmul(weights[..., split:], recent_values))


def decoder_class(model: torch.nn.Module, fast: bool = True) -> type[CachedDecoder]:
    """The KV-cached decoder for ``model``: :class:`GPT2Decoder` where it applies (and ``fast``),
    else the transformers-cache :class:`~agents.lm.decoding.CachedDecoder`."""
    return GPT2Decoder if fast and gpt2_parts(model) is not None else CachedDecoder


def cached_decoder(model: torch.nn.Module, fast: bool = True) -> CachedDecoder:
    """A new :func:`decoder_class` decoder for ``model``, ready for ``start(prompts)``."""
    return decoder_class(model, fast)(model)

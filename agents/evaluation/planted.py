"""A model with a known answer: it plays one problem's target, except at planted sites.

At each planted site (a position of the target) it writes the right token with probability p
and a fatal one (the pad, which ends the episode as wrong) otherwise; everywhere else it writes
the right token with probability 1. So everything about it is known exactly: on the target, at
site s, Q(right) = the product of the later sites' p, Q(pad) = 0, V = p_s Q(right) and the
headroom H = (1 − p_s) Q(right); every other token has H = 0. The ground truth's estimates and
intervals (:mod:`agents.evaluation.criticality`) are checked against these numbers.

It speaks the transformers call convention the decoders use (``input_ids``, ``position_ids``, a
cache it ignores: its output depends only on the position), so it runs through the same
:class:`~agents.lm.decoding.CachedDecoder` as any causal LM.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import torch

from arith_gym.tokenizer import PAD_ID

SURE_LOGIT = -1e4
"""The logit of every token the model never writes (probability exp(-1e4) = 0 in float32)."""


class PlantedModel(torch.nn.Module):
    """Plays ``target`` after ``prompt`` (token ids), with ``sites``: target position -> p."""

    def __init__(self, prompt: np.ndarray, target: np.ndarray, sites: Mapping[int, float], vocab_size: int):
        super().__init__()
        if any(not 0.0 < p < 1.0 or not 0 <= s < len(target) for s, p in sites.items()):
            raise ValueError(f"sites must map target positions to probabilities in (0, 1), got {dict(sites)}")
        self.prompt_length, self.sites = len(prompt), dict(sites)
        logits = np.full((len(target) + 1, vocab_size), SURE_LOGIT, dtype=np.float32)
        logits[np.arange(len(target)), target] = 0.0
        logits[len(target), PAD_ID] = 0.0  # past the target: end
        for site, p in self.sites.items():
            logits[site, target[site]], logits[site, PAD_ID] = np.log(p), np.log1p(-p)
        self.register_buffer("table", torch.as_tensor(logits))
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # where the decoders read the device
        self.config = SimpleNamespace(_attn_implementation="eager")

    def set_attn_implementation(self, implementation: str) -> None:
        """Nothing to switch: its attention (uniform) is always available."""

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None, **kwargs):
        rows, length = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device).expand(rows, -1)
        target_index = (position_ids - self.prompt_length + 1).clamp(0, len(self.table) - 1)
        out = SimpleNamespace(logits=self.table[target_index])
        if kwargs.get("output_attentions"):
            causal = torch.tril(torch.ones(length, length, device=input_ids.device))
            out.attentions = ((causal / causal.sum(dim=1, keepdim=True)).expand(rows, 1, -1, -1),)
        return out

    def headroom(self, site: int) -> float:
        """The exact H of the right token's state at ``site`` (on the target)."""
        later = [p for s, p in self.sites.items() if s > site]
        return (1.0 - self.sites[site]) * float(np.prod(later))

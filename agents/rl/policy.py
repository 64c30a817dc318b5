"""The RL policy: a causal LM whose next-token distribution is the action distribution,
plus a value head on its last hidden state.

Sampling temperature belongs to the policy: actions are drawn from ``softmax(logits / T)``
and the log-probs that PPO optimises are those of that same tempered distribution (the
paper samples and trains at T = 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from agents.lm.decoding import CACHE_KEYWORD
from agents.lm.gpt2_decoding import GPT2Parts, gpt2_parts
from agents.lm.model import check_vocabulary
from arith_gym.tokenizer import VOCAB_SIZE


@dataclass
class PolicyOutput:
    """Raw logits [B, L, V], values [B, L] and the KV cache of one forward pass."""

    logits: torch.Tensor
    values: torch.Tensor
    cache: object | None


def value_mlp(width: int, hidden: tuple[int, ...], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """The value head: an MLP from the LM's hidden state (``width``) through ``hidden`` layers to 1."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), activation()]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class LMPolicy(nn.Module):
    """Actor-critic around any transformers causal LM with the arith_gym vocabulary.

    Args:
        lm: a causal LM (e.g. ``agents.lm.load_reference(...)[0]``); it is trained in place.
        temperature: sampling temperature of the policy.
        value_hidden: widths of the value MLP's hidden layers (the paper: 128, 128).
        vocab_size: the task's vocabulary (:attr:`agents.lm.TaskInfo.vocab_size`; addition's 41).
    """

    def __init__(
        self,
        lm: PreTrainedModel,
        temperature: float = 2.0,
        value_hidden: tuple[int, ...] = (128, 128),
        vocab_size: int = VOCAB_SIZE,
    ):
        super().__init__()
        check_vocabulary(lm, vocab_size)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.lm = lm
        self.temperature = float(temperature)
        self.value_head = value_mlp(lm.config.hidden_size, value_hidden)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        use_cache: bool = False,
        **cache: object,
    ) -> PolicyOutput:
        """Logits, values and KV cache; ``cache``: the LM's cache under :data:`CACHE_KEYWORD`, if any."""
        out = self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            output_hidden_states=True,
            **cache,
        )
        values = self.value_head(out.hidden_states[-1]).squeeze(-1)
        return PolicyOutput(out.logits, values, getattr(out, CACHE_KEYWORD, None))

    def decode_parts(self) -> GPT2Parts | None:
        """What :class:`~agents.lm.gpt2_decoding.GPT2Decoder` needs to step this policy (logits and
        values from the new token's final hidden state), or None if its LM is not a GPT-2 it runs."""
        parts = gpt2_parts(self.lm)
        if parts is None:
            return None

        def head(hidden: torch.Tensor) -> PolicyOutput:
            return PolicyOutput(parts.head(hidden).logits, self.value_head(hidden).view(-1, 1), None)

        return GPT2Parts(parts.body, head)

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the tempered action distribution."""
        return torch.log_softmax(logits.float() / self.temperature, dim=-1)

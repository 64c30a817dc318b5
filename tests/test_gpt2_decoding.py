"""The GPT-2 decoder with the two-part KV cache (agents/lm/gpt2_decoding.py) against the
transformers-cache decoder: same outputs up to float rounding, whatever the folding and row drops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from agents.bench import NoPadLM
from agents.lm.decoding import CachedDecoder
from agents.lm.gpt2_decoding import GPT2Decoder, cached_decoder, decoder_class
from agents.lm.model import DEFAULT_REFERENCE, build_model, load_reference
from agents.rl.policy import LMPolicy, PolicyOutput
from arith_gym.scratchpad import prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, VOCAB_SIZE, encode

PROBLEMS = [(7, 5), (4821, 39), (0, 66), (123, 7), (99, 901)]


@pytest.fixture(scope="module")
def shipped():
    """The shipped N = 3 reference: real, peaked distributions (a random model's are flat)."""
    return load_reference(DEFAULT_REFERENCE)[0]


def _outputs(decoder, model, tokens, keep_at=None, keep=None):
    """Log-probs (and values, for a policy) at every step of ``decoder`` fed ``tokens`` [T, B]."""
    prompts = [encode(prompt_text(a, b)) for a, b in PROBLEMS]
    rows = torch.arange(len(prompts))
    log_probs, values = [], []
    with torch.no_grad():
        out = decoder.start(prompts)
        for t in range(len(tokens) + 1):
            full = torch.full((len(prompts), VOCAB_SIZE), float("nan"))
            full[rows] = torch.log_softmax(out.logits[:, -1], dim=-1)
            log_probs.append(full)
            if isinstance(out, PolicyOutput):
                held = torch.full((len(prompts),), float("nan"))
                held[rows] = out.values[:, -1]
                values.append(held)
            if t == len(tokens):
                break
            if t == keep_at:
                decoder.keep(keep)
                rows = rows[keep]
            out = decoder.step(tokens[t][rows])
    return torch.stack(log_probs, 1), torch.stack(values, 1) if values else None


def _teacher_tokens(steps):
    """Each problem's own scratchpad, as the shipped model would write it (so it is confident)."""
    texts = [encode(target_text(a, b)) for a, b in PROBLEMS]
    return torch.stack([torch.as_tensor(np.resize(text, steps)) for text in texts], dim=1)


@pytest.mark.parametrize("recent_columns", [1, 4, 32])
@pytest.mark.parametrize("as_policy", [False, True])
def test_gpt2_decoder_equals_the_transformers_cache(shipped, recent_columns, as_policy):
    model = LMPolicy(copy.deepcopy(shipped), temperature=2.0) if as_policy else shipped
    tokens = _teacher_tokens(40)
    keep = torch.tensor([4, 0, 2])  # drop two rows, reorder the rest, mid-way through a fold
    expected, expected_values = _outputs(CachedDecoder(model), model, tokens, 17, keep)
    got, got_values = _outputs(GPT2Decoder(model, recent_columns), model, tokens, 17, keep)
    assert got.shape == (len(PROBLEMS), 41, VOCAB_SIZE)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0, equal_nan=True)
    assert (got[:, 0].max(dim=-1).values > -0.1).all()  # the model is sure of its first token
    if as_policy:
        torch.testing.assert_close(got_values, expected_values, atol=1e-5, rtol=0, equal_nan=True)


def test_branches_equal_the_transformers_cache(shipped):
    a, b = 4821, 39
    context = np.concatenate([encode(prompt_text(a, b)), encode(target_text(a, b))[:30]])
    lengths = np.array([12, 40, 25, 12])
    tokens = torch.as_tensor(context[lengths]).clone()
    results = []
    for kind in (CachedDecoder, GPT2Decoder):
        decoder = kind.branches(shipped, context, lengths)
        step_tokens, log_probs = tokens, []
        with torch.no_grad():
            for _ in range(6):
                logits = decoder.step(step_tokens).logits[:, -1]
                log_probs.append(torch.log_softmax(logits, dim=-1))
                step_tokens = logits.argmax(dim=-1)
        assert isinstance(decoder, kind)
        results.append(torch.stack(log_probs, 1))
    torch.testing.assert_close(results[1], results[0], atol=1e-5, rtol=0)


def test_decoder_class_takes_the_fast_path_only_where_it_is_exact(micro_model):
    policy = LMPolicy(micro_model)
    assert decoder_class(micro_model) is GPT2Decoder and decoder_class(policy) is GPT2Decoder
    assert isinstance(cached_decoder(policy), GPT2Decoder)
    assert decoder_class(micro_model, fast=False) is CachedDecoder
    # A wrapper that edits the logits runs through transformers, unless it says how to decode it.
    assert decoder_class(_Wrapper(micro_model)) is CachedDecoder
    assert decoder_class(NoPadLM(micro_model)) is GPT2Decoder
    assert decoder_class(LMPolicy(micro_model, 1.0)) is GPT2Decoder
    # A GPT-2 whose dropout the step would skip runs through transformers.
    dropout = build_model("micro", seed=0)
    dropout.config.resid_pdrop = 0.1
    assert decoder_class(dropout) is CachedDecoder
    assert decoder_class(LMPolicy(dropout)) is CachedDecoder
    with pytest.raises(ValueError, match="_Wrapper"):
        GPT2Decoder(_Wrapper(micro_model))


class _Wrapper(torch.nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, **kwargs):
        return self.lm(**kwargs)


def test_a_wrapper_that_edits_the_logits_keeps_its_edit_on_the_fast_path(micro_model):
    no_pad = NoPadLM(micro_model)
    fast, slow = (
        _outputs(GPT2Decoder(no_pad), no_pad, _teacher_tokens(6))[0],
        _outputs(CachedDecoder(no_pad), no_pad, _teacher_tokens(6))[0],
    )
    assert torch.isneginf(fast[..., PAD_ID]).all()
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_gpt2_decoder_step_before_start_is_an_error(micro_model):
    with pytest.raises(RuntimeError, match="start"):
        GPT2Decoder(micro_model).step(torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("columns", [0, -3, 2.5, True])
def test_gpt2_decoder_rejects_a_bad_recent_buffer_size(micro_model, columns):
    with pytest.raises(ValueError, match="recent_columns must be a positive integer"):
        GPT2Decoder(micro_model, recent_columns=columns)

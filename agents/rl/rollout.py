"""Collect a batch of episodes from the arith_gym vector env with an LM policy.

The policy runs one forward of the newest token per step over a KV cache
(:func:`~agents.lm.gpt2_decoding.cached_decoder`). The frozen reference never influences
what is sampled, so it scores the finished episodes in teacher-forced forwards
(:func:`score_with_reference`) instead of stepping beside the policy. Prompts are left-padded
(attention mask and position ids make padding invisible); episodes that have ended keep being
fed a token (or are dropped by the decoder) and everything recorded for them is masked out.

The environment is the source of truth: rewards, episode ends and critical-token labels
all come from ``env.step``, never from re-parsing text here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from transformers import PreTrainedModel

from agents.kl import certainty as certainty_of
from agents.lm.decoding import NaiveDecoder, RowTracker, left_pad
from agents.lm.gpt2_decoding import cached_decoder
from agents.rl.policy import LMPolicy
from arith_gym.tokenizer import PAD_ID, encode


@dataclass(frozen=True)
class ReferenceScores:
    """What the frozen reference says of a rollout's episodes (``[B, T]`` unless noted, 0 off the mask)."""

    ref_logp: torch.Tensor  # log pi_ref(a) at the policy temperature
    ref_log_probs: torch.Tensor  # [B, T, V] reference log-probs at the policy temperature
    certainty: torch.Tensor  # reference certainty J at the certainty temperature


@dataclass(frozen=True)
class Rollout:
    """A batch of B episodes of at most T generated tokens (tensors are [B, T] unless noted).

    ``mask`` marks the tokens actually played in a live episode; every other entry is
    padding. ``rewards`` holds the env's reward at each step (0 until the last). Frozen: what
    the reference says of it is a separate :class:`ReferenceScores` (:func:`with_reference`
    returns the scored copy), so no weighting or loss can swap a field another one reads.
    """

    prompt_ids: torch.Tensor  # [B, W] left-padded prompts
    prompt_mask: torch.Tensor  # [B, W]
    actions: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor  # log pi(a) at the policy temperature
    entropy: torch.Tensor
    values: torch.Tensor
    log_probs: torch.Tensor  # [B, T, V] policy log-probs (tempered)
    rewards: torch.Tensor
    dones: torch.Tensor
    critical: torch.Tensor  # bool: the env labelled this token critical
    critical_labels: torch.Tensor  # [B, T, 4] line, operand, index, kind code (-1 if none)
    correct: np.ndarray  # [B] bool
    groups: torch.Tensor  # [B] long: equal ids played the same problem
    max_steps: int = 0  # the env's episode step limit
    timings: dict[str, float] = field(default_factory=dict)
    reference: ReferenceScores | None = None  # None until the reference has scored the episodes

    @property
    def ref_logp(self) -> torch.Tensor | None:
        return None if self.reference is None else self.reference.ref_logp

    @property
    def ref_log_probs(self) -> torch.Tensor | None:
        return None if self.reference is None else self.reference.ref_log_probs

    @property
    def certainty(self) -> torch.Tensor | None:
        return None if self.reference is None else self.reference.certainty

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())

    def accuracy(self) -> float:
        return float(self.correct.mean())

    def prompts(self) -> list[np.ndarray]:
        """Each episode's prompt token ids, without the left padding."""
        rows = zip(self.prompt_ids.cpu(), self.prompt_mask.cpu().bool(), strict=True)
        return [ids[mask].numpy() for ids, mask in rows]


@torch.no_grad()
def collect_rollout(
    policy: LMPolicy,
    reference: PreTrainedModel | None,
    env: VectorEnv,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
    cached: bool = True,
    greedy: bool = False,
    options: dict | None = None,
    drop_finished: bool = True,
) -> Rollout:
    """Play one episode in every sub-env of ``env`` (autoreset DISABLED) and record it all.

    ``seed`` is passed to ``env.reset`` (problems); ``generator`` drives action sampling.
    ``cached=False`` re-runs the whole context every token (for validation and benchmarks).
    The ``reference`` (None: none) then scores the episodes (:func:`score_with_reference`).
    ``drop_finished``: the decoder drops finished episodes (:class:`~agents.lm.decoding.RowTracker`;
    the same episodes, faster); off, every row is stepped to the end, as a model that counts its
    calls per row needs.
    """
    timings = {"env": 0.0, "total": 0.0}
    started = time.perf_counter()
    _, info = env.reset(seed=seed, options=options)
    timings["env"] += time.perf_counter() - started
    # The env's own codec where it has one (another tokenizer than the characters).
    codec = getattr(env.unwrapped, "codec", None)
    prompts = [(codec.encode if codec is not None else encode)(p) for p in info["prompt"]]
    device = next(policy.parameters()).device
    decoder = cached_decoder(policy) if cached else NaiveDecoder(policy)
    out = decoder.start(prompts)

    batch, steps = env.num_envs, env.unwrapped.config.max_episode_steps
    record = _Recorder(batch, steps, device)
    live = torch.ones(batch, dtype=torch.bool, device=device)
    correct = np.zeros(batch, dtype=bool)
    tracker = RowTracker(batch, device, share=0.25 if drop_finished else None)
    for t in range(steps):
        # Finished rows the decoder dropped get a uniform distribution: masked out like the rest.
        vocab = out.logits.shape[-1]
        log_probs = tracker.full(policy.log_probs(out.logits[:, -1]), fill=-math.log(vocab))
        if greedy:
            actions = log_probs.argmax(dim=-1)
        else:
            actions = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
        record.policy_step(t, live, actions, log_probs, tracker.full(out.values[:, -1]))

        env_started = time.perf_counter()
        _, rewards, terminated, truncated, info = env.step(actions.cpu().numpy())
        timings["env"] += time.perf_counter() - env_started
        ended = terminated | truncated
        record.env_step(t, rewards, ended, info)
        correct[info["_correct"]] = info["correct"][info["_correct"]]
        live &= ~torch.as_tensor(ended, device=device)
        if not live.any():
            break
        out = decoder.step(actions[tracker.drop_finished(decoder, ~live)])

    prompt_ids, prompt_mask, _ = left_pad(prompts, device)
    rollout = record.finish(t + 1, prompt_ids, prompt_mask, correct, timings, steps)
    if reference is not None:
        reference_started = time.perf_counter()
        rollout = with_reference(
            rollout, reference, policy.temperature, certainty_temperature, certainty_kind
        )
        timings["reference"] = time.perf_counter() - reference_started
    timings["total"] = time.perf_counter() - started
    return rollout


def episode_inputs(
    rollout: Rollout, rows: torch.Tensor, steps: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``input_ids``, ``attention_mask`` and ``position_ids`` that predict the first ``steps``
    actions (default: all) of episodes ``rows``, and the prompt width: the model's output at
    column ``width - 1 + t`` is its distribution over action t. Prompt columns that are padding
    in every row are left out."""
    steps = rollout.actions.shape[1] if steps is None else steps
    prompt_mask = rollout.prompt_mask[rows]
    width = int(prompt_mask.sum(dim=1).max())
    prompt_ids, prompt_mask = rollout.prompt_ids[rows, -width:], prompt_mask[:, -width:]
    actions = rollout.actions[rows, : steps - 1]  # the last action is never an input
    input_ids = torch.cat([prompt_ids, actions], dim=1)
    attention = torch.cat([prompt_mask, torch.ones_like(actions)], dim=1)
    # The positions the rollout used: real prompt tokens count from 0, then one per token.
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids, attention, positions, width


def episode_chunks(
    rollout: Rollout, rows: torch.Tensor, rows_per_forward: int
) -> Iterator[tuple[torch.Tensor, int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]]:
    """The teacher-forced forwards over episodes ``rows`` that compute little past their ends.

    Yields ``(chunk, steps, inputs)``: ``chunk`` indexes ``rows`` (longest episodes first,
    ``rows_per_forward`` at a time), ``steps`` is the chunk's longest episode and ``inputs``
    are :func:`episode_inputs` of those rows cut to it. Episodes of a batch differ in length by
    up to a third, so one forward at the batch's width wastes that much.
    """
    lengths = rollout.mask[rows].sum(dim=1)
    for chunk in lengths.argsort(descending=True, stable=True).split(rows_per_forward):
        steps = max(int(lengths[chunk].max()), 1)
        yield chunk, steps, episode_inputs(rollout, rows[chunk], steps)


@torch.no_grad()
def score_with_reference(
    rollout: Rollout,
    reference: PreTrainedModel,
    temperature: float,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
    rows_per_forward: int = 8,
) -> ReferenceScores:
    """The reference's scores of ``rollout``'s episodes, from teacher-forced forwards over them.

    ``ref_log_probs`` (at the policy's ``temperature``), ``ref_logp`` of the actions and the
    certainty J (at ``certainty_temperature``): the values the reference gives token by token
    with a KV cache, up to float rounding (tested to 1e-5), at a fraction of the cost. Episodes
    go through in order of length, ``rows_per_forward`` at a time, each group cut to its
    longest episode, so that little is computed past the episodes' ends (there the log-probs
    are uniform and J is 0, masked out like everything else there).
    """
    batch, steps = rollout.actions.shape
    vocab = rollout.log_probs.shape[-1]
    ref_log_probs = rollout.log_probs.new_full((batch, steps, vocab), -math.log(vocab))
    certainty = rollout.log_probs.new_zeros((batch, steps))
    every_row = torch.arange(batch, device=rollout.actions.device)
    for rows, length, (input_ids, attention, positions, width) in episode_chunks(
        rollout, every_row, rows_per_forward
    ):
        out = reference(input_ids=input_ids, attention_mask=attention, position_ids=positions)
        logits = out.logits[:, width - 1 :].float()
        ref_log_probs[rows, :length] = torch.log_softmax(logits / temperature, dim=-1)
        certainty[rows, :length] = certainty_of(logits, certainty_temperature, certainty_kind)
    mask = rollout.mask
    ref_logp = ref_log_probs.gather(-1, rollout.actions[..., None]).squeeze(-1) * mask
    return ReferenceScores(ref_logp, ref_log_probs, certainty * mask)


def with_reference(
    rollout: Rollout,
    reference: PreTrainedModel,
    temperature: float,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
) -> Rollout:
    """``rollout`` with the ``reference``'s scores (:func:`score_with_reference`)."""
    scores = score_with_reference(rollout, reference, temperature, certainty_temperature, certainty_kind)
    return replace(rollout, reference=scores)


class _Recorder:
    """Preallocated [B, T] buffers filled step by step, trimmed to the longest episode."""

    def __init__(self, batch: int, steps: int, device: torch.device) -> None:
        zeros = lambda dtype=torch.float32: torch.zeros((batch, steps), dtype=dtype, device=device)  # noqa: E731
        self.actions = torch.full((batch, steps), PAD_ID, dtype=torch.long, device=device)
        self.mask = zeros(torch.bool)
        self.logp, self.entropy, self.values = zeros(), zeros(), zeros()
        self.rewards = zeros()
        self.log_probs: list[torch.Tensor] = []
        self.dones, self.critical = zeros(torch.bool), zeros(torch.bool)
        self.critical_labels = torch.full((batch, steps, 4), -1, dtype=torch.long, device=device)

    def policy_step(self, t, live, actions, log_probs, values) -> None:
        self.mask[:, t] = live
        self.actions[:, t] = torch.where(live, actions, PAD_ID)
        self.logp[:, t] = log_probs.gather(-1, actions[:, None]).squeeze(-1)
        self.entropy[:, t] = -(log_probs.exp() * log_probs).sum(-1)
        self.values[:, t] = values.float()
        self.log_probs.append(log_probs)

    def env_step(self, t, rewards, ended, info) -> None:
        device = self.rewards.device
        self.rewards[:, t] = torch.as_tensor(rewards, dtype=torch.float32, device=device)
        self.dones[:, t] = torch.as_tensor(ended, device=device)
        has = info["_critical"]
        if has.any():
            self.critical[:, t] = torch.as_tensor(has, device=device)
            fields = info["critical"]
            labels = np.stack([fields["line"], fields["operand"], fields["index"], fields["kind"]], axis=1)
            self.critical_labels[:, t] = torch.as_tensor(labels, device=device)

    def finish(self, length, prompt_ids, prompt_mask, correct, timings, max_steps) -> Rollout:
        mask = self.mask[:, :length]
        cut = lambda x: x[:, :length] * mask if x.dtype != torch.bool else x[:, :length] & mask  # noqa: E731
        return Rollout(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            actions=self.actions[:, :length],
            mask=mask,
            logp=cut(self.logp),
            entropy=cut(self.entropy),
            values=cut(self.values),
            log_probs=torch.stack(self.log_probs, dim=1),
            rewards=cut(self.rewards),
            dones=cut(self.dones),
            critical=cut(self.critical),
            critical_labels=self.critical_labels[:, :length],
            correct=correct,
            groups=torch.arange(mask.shape[0], device=mask.device),
            max_steps=max_steps,
            timings=timings,
        )

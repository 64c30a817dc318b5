"""Collect a batch of episodes from the arith_gym vector env with an LM policy.

One forward of the newest token per step, thanks to the transformers KV cache, for the
policy and for the frozen reference model. Prompts are left-padded (attention mask and
position ids make padding invisible); episodes that have ended keep being fed a token so
the batch stays rectangular, and everything recorded for them is masked out.

The environment is the source of truth: rewards, episode ends and critical-token labels
all come from ``env.step``, never from re-parsing text here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from transformers import PreTrainedModel

from agents.kl import certainty as certainty_of
from agents.lm.decoding import CachedDecoder, NaiveDecoder, left_pad
from agents.rl.policy import LMPolicy
from arith_gym.tokenizer import PAD_ID, encode


@dataclass
class Rollout:
    """A batch of B episodes of at most T generated tokens (tensors are [B, T] unless noted).

    ``mask`` marks the tokens actually played in a live episode; every other entry is
    padding. ``rewards`` holds the env's reward at each step (0 until the last).
    """

    prompt_ids: torch.Tensor  # [B, W] left-padded prompts
    prompt_mask: torch.Tensor  # [B, W]
    actions: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor  # log pi(a) at the policy temperature
    entropy: torch.Tensor
    values: torch.Tensor
    ref_logp: torch.Tensor  # log pi_ref(a) at the policy temperature
    log_probs: torch.Tensor  # [B, T, V] policy log-probs (tempered)
    ref_log_probs: torch.Tensor  # [B, T, V] reference log-probs at the policy temperature
    certainty: torch.Tensor  # reference certainty J at the certainty temperature
    rewards: torch.Tensor
    dones: torch.Tensor
    critical: torch.Tensor  # bool: the env labelled this token critical
    critical_labels: torch.Tensor  # [B, T, 4] line, operand, index, kind code (-1 if none)
    correct: np.ndarray  # [B] bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())

    def accuracy(self) -> float:
        return float(self.correct.mean())


@torch.no_grad()
def collect_rollout(
    policy: LMPolicy,
    reference: PreTrainedModel,
    env: VectorEnv,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
    cached: bool = True,
    greedy: bool = False,
    options: dict | None = None,
) -> Rollout:
    """Play one episode in every sub-env of ``env`` (autoreset DISABLED) and record it all.

    ``seed`` is passed to ``env.reset`` (problems); ``generator`` drives action sampling.
    ``cached=False`` re-runs the whole context every token (for validation and benchmarks).
    """
    timings = {"env": 0.0, "total": 0.0}
    started = time.perf_counter()
    _, info = env.reset(seed=seed, options=options)
    timings["env"] += time.perf_counter() - started
    prompts = [encode(p) for p in info["prompt"]]
    device = next(policy.parameters()).device
    decoder_type = CachedDecoder if cached else NaiveDecoder
    policy_decoder, reference_decoder = decoder_type(policy), decoder_type(reference)
    out, ref_out = policy_decoder.start(prompts), reference_decoder.start(prompts)

    batch, steps = env.num_envs, env.unwrapped.config.max_episode_steps
    record = _Recorder(batch, steps, device)
    live = torch.ones(batch, dtype=torch.bool, device=device)
    correct = np.zeros(batch, dtype=bool)
    for t in range(steps):
        log_probs = policy.log_probs(out.logits[:, -1])
        if greedy:
            actions = log_probs.argmax(dim=-1)
        else:
            actions = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
        ref_logits = ref_out.logits[:, -1].float()
        ref_log_probs = torch.log_softmax(ref_logits / policy.temperature, dim=-1)
        record.policy_step(t, live, actions, log_probs, out.values[:, -1], ref_log_probs)
        record.certainty[:, t] = certainty_of(ref_logits, certainty_temperature, certainty_kind)

        env_started = time.perf_counter()
        _, rewards, terminated, truncated, info = env.step(actions.cpu().numpy())
        timings["env"] += time.perf_counter() - env_started
        ended = terminated | truncated
        record.env_step(t, rewards, ended, info)
        correct[info["_correct"]] = info["correct"][info["_correct"]]
        live &= ~torch.as_tensor(ended, device=device)
        if not live.any():
            break
        out, ref_out = policy_decoder.step(actions), reference_decoder.step(actions)

    prompt_ids, prompt_mask, _ = left_pad(prompts, device)
    timings["total"] = time.perf_counter() - started
    return record.finish(t + 1, prompt_ids, prompt_mask, correct, timings)


class _Recorder:
    """Preallocated [B, T] buffers filled step by step, trimmed to the longest episode."""

    def __init__(self, batch: int, steps: int, device: torch.device) -> None:
        zeros = lambda dtype=torch.float32: torch.zeros((batch, steps), dtype=dtype, device=device)  # noqa: E731
        self.actions = torch.full((batch, steps), PAD_ID, dtype=torch.long, device=device)
        self.mask = zeros(torch.bool)
        self.logp, self.entropy, self.values = zeros(), zeros(), zeros()
        self.ref_logp, self.certainty, self.rewards = zeros(), zeros(), zeros()
        self.log_probs: list[torch.Tensor] = []
        self.ref_log_probs: list[torch.Tensor] = []
        self.dones, self.critical = zeros(torch.bool), zeros(torch.bool)
        self.critical_labels = torch.full((batch, steps, 4), -1, dtype=torch.long, device=device)

    def policy_step(self, t, live, actions, log_probs, values, ref_log_probs) -> None:
        self.mask[:, t] = live
        self.actions[:, t] = torch.where(live, actions, PAD_ID)
        self.logp[:, t] = log_probs.gather(-1, actions[:, None]).squeeze(-1)
        self.entropy[:, t] = -(log_probs.exp() * log_probs).sum(-1)
        self.values[:, t] = values.float()
        self.ref_logp[:, t] = ref_log_probs.gather(-1, actions[:, None]).squeeze(-1)
        self.log_probs.append(log_probs)
        self.ref_log_probs.append(ref_log_probs)

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

    def finish(self, length, prompt_ids, prompt_mask, correct, timings) -> Rollout:
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
            ref_logp=cut(self.ref_logp),
            log_probs=torch.stack(self.log_probs, dim=1),
            ref_log_probs=torch.stack(self.ref_log_probs, dim=1),
            certainty=cut(self.certainty),
            rewards=cut(self.rewards),
            dones=cut(self.dones),
            critical=cut(self.critical),
            critical_labels=self.critical_labels[:, :length],
            correct=correct,
            timings=timings,
        )

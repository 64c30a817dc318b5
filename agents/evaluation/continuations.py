"""Continue one episode from many of its prefixes, as the environment would judge each branch.

Row r of a call is ``prefix[:positions[r]]``, then the forced token ``tokens[r]``, then tokens
sampled from the model until the environment ends the episode. The environment (one
:class:`~arith_gym.task_env.TaskEnv` per row, replayed through the prefix) owns the episode's end
and its reward, so a branch is judged exactly as an RL episode is, for the character ids and for
any tokenizer alike. The model reads the shared prefix once (its KV cache is copied to every row,
:meth:`~agents.lm.decoding.CachedDecoder.branches`) and drops rows as their episodes end.

This is the machinery of both the critical-token finder (:mod:`agents.evaluation.finder`) and
the ground truth of :mod:`agents.evaluation.criticality`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.lm.decoding import RowTracker, choose_tokens
from agents.lm.gpt2_decoding import decoder_class
from arith_gym.codec import Codec
from arith_gym.task import ProblemKey
from arith_gym.task_env import TaskEnv


@dataclass
class Branches:
    """The outcome of each branch: whether it solved the problem, and (when asked) what it wrote.

    ``tokens[r]`` is the whole episode of row r (prefix, forced token and continuation); ``critical``
    and ``on_track`` are the env's labels of each of those steps.
    """

    success: np.ndarray
    tokens: list[np.ndarray] = field(default_factory=list)
    critical: list[np.ndarray] = field(default_factory=list)
    on_track: list[np.ndarray] = field(default_factory=list)


@dataclass
class Continuer:
    """Runs branches of episodes of one task for one model (a pool of envs is kept between calls).

    Args:
        model: the causal LM that samples the continuations.
        codec: the model's tokens (:mod:`arith_gym.codec`); the env judges their text.
        task, comfort_digits, split: the environment the episodes come from.
        temperature: the sampling temperature of the continuations.
        batch_size: rows decoded together (the shared prefix's cache is copied to each).
        max_episode_steps, drop_share: see the attributes.
    """

    model: PreTrainedModel
    codec: Codec
    task: str
    comfort_digits: int
    split: str
    temperature: float = 1.0
    batch_size: int = 256
    max_episode_steps: int | None = None
    """The env's step limit (None: the task's own)."""
    drop_share: float | None = 0.25
    """Drop finished rows once this share of the held ones have ended (None: never; same draws
    up to float rounding, :class:`~agents.lm.decoding.RowTracker`)."""
    _envs: list[TaskEnv] = field(default_factory=list, init=False, repr=False)

    def prompt_ids(self, problem: ProblemKey) -> np.ndarray:
        """The prompt's token ids, as the env writes them."""
        return np.asarray(self.codec.encode(self._env(0).reset(options={"problem": problem})[1]["prompt"]))

    @torch.no_grad()
    def run(
        self,
        problem: ProblemKey,
        prefix: np.ndarray,
        positions: np.ndarray,
        tokens: np.ndarray,
        generator: torch.Generator,
        keep: bool = False,
    ) -> Branches:
        """Branch r: ``prefix[:positions[r]]``, ``tokens[r]``, then sampled until the episode ends.

        ``keep``: also return each branch's tokens and the env's labels (for sampling episodes).
        Rows run in chunks of ``batch_size`` in the order given (put rows of one position together:
        they end at about the same time).
        """
        prefix = np.asarray(prefix, dtype=np.int64)
        positions, tokens = np.asarray(positions, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
        out = Branches(np.zeros(len(positions), dtype=bool))
        for start in range(0, len(positions), self.batch_size):
            rows = slice(start, start + self.batch_size)
            chunk = self._run_chunk(
                problem, np.asarray(prefix), positions[rows], tokens[rows], generator, keep
            )
            out.success[rows] = chunk.success
            out.tokens += chunk.tokens
            out.critical += chunk.critical
            out.on_track += chunk.on_track
        return out

    def _env(self, index: int) -> TaskEnv:
        while len(self._envs) <= index:
            self._envs.append(
                TaskEnv(
                    self.task,
                    self.comfort_digits,
                    self.split,
                    max_episode_steps=self.max_episode_steps,
                    tokenizer=self.codec,
                )
            )
        return self._envs[index]

    def _run_chunk(self, problem, prefix, positions, tokens, generator, keep) -> Branches:
        rows = len(positions)
        envs = [self._env(r) for r in range(rows)]
        prompt = None
        written: list[list[int]] = [[] for _ in range(rows)]
        labels: list[list[tuple[bool, bool]]] = [[] for _ in range(rows)]
        success = np.zeros(rows, dtype=bool)
        live = np.ones(rows, dtype=bool)

        def step(row: int, token: int) -> None:
            _, _, terminated, truncated, info = envs[row].step(token)
            if keep:
                written[row].append(token)
                labels[row].append((bool(info["critical"]), bool(info["on_track"])))
            if terminated or truncated:
                live[row], success[row] = False, bool(info["correct"])

        for row in range(rows):
            _, info = envs[row].reset(options={"problem": problem})
            prompt = info["prompt"]
            for token in prefix[: positions[row]].tolist():
                step(row, int(token))
            if not live[row]:
                raise ValueError(f"the prefix of row {row} ends its episode before position {positions[row]}")
            step(row, int(tokens[row]))
        prompt = np.asarray(self.codec.encode(prompt), dtype=np.int64)
        context = np.concatenate([prompt, prefix[: positions.max()]]).astype(np.int64)
        decoder = decoder_class(self.model).branches(self.model, context, len(prompt) + positions)
        tracker = RowTracker(rows, decoder.device, share=self.drop_share)
        current = torch.as_tensor(tokens, device=decoder.device)
        while live.any():
            held = tracker.drop_finished(decoder, torch.as_tensor(~live, device=decoder.device))
            logits = tracker.full(decoder.step(current[held]).logits[:, -1])
            current = choose_tokens(logits, self.temperature, generator)
            for row in np.flatnonzero(live):
                step(row, int(current[row]))
        if not keep:
            return Branches(success)
        return Branches(
            success,
            [np.asarray(w, dtype=np.int64) for w in written],
            [np.array([c for c, _ in lab], dtype=bool) for lab in labels],
            [np.array([o for _, o in lab], dtype=bool) for lab in labels],
        )

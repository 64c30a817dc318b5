"""Teacher-forced probabilities of the target tokens, split by structural critical tokens.

This is the check that a reference model fails where the paper's does: on (N+1)-digit
problems, the probability it gives the right token should be low at the structural critical
tokens and near 1 elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.kl import certainty as certainty_of
from agents.lm.batches import make_batch
from agents.lm.episodes import play_episodes
from arith_gym.codec import TokenizerCodec
from arith_gym.operands import problems_with_digits, split_for
from arith_gym.scratchpad import CriticalToken, critical_tokens, target_text
from arith_gym.task import ProblemKey, critical_tokens_of, first_deviation, get_task


@dataclass(frozen=True)
class TargetProbs:
    """Per target token of one problem: p(right token), the model's certainty J there
    (``agents.kl.certainty`` at the certainty temperature) and whether it is critical."""

    probs: np.ndarray
    certainty: np.ndarray
    critical: np.ndarray


@torch.no_grad()
def target_token_probs(
    model: PreTrainedModel,
    problems: Sequence[ProblemKey],
    comfort_digits: int,
    temperature: float = 1.0,
    batch_size: int = 64,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
    task: str = "Addition",
    codec: TokenizerCodec | None = None,
) -> list[TargetProbs]:
    """p(right token | right prefix) at ``temperature`` for every target token of each of ``task``'s
    problems (with a tokenizer's ``codec``: its canonical tokens, critical when they cover a
    critical character)."""
    device = next(model.parameters()).device
    results = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        batch = {k: v.to(device) for k, v in make_batch(list(chunk), task=task, codec=codec).items()}
        labels = batch.pop("labels")
        raw = model(**batch).logits[:, :-1].float()
        targets = labels[:, 1:]
        log_probs = torch.log_softmax(raw / temperature, dim=-1).gather(-1, targets.clamp(min=0)[..., None])[
            ..., 0
        ]
        certainty = certainty_of(raw, certainty_temperature, certainty_kind)
        for row, problem in enumerate(chunk):
            keep = (targets[row] >= 0).cpu().numpy()
            probs = log_probs[row].exp().cpu().numpy()[keep]
            target, records = get_task(task).target(problem, comfort_digits)
            positions = [record[0] for record in records]
            if codec is not None:  # the tokens whose text covers a critical character
                spans = codec.offsets(target)
                positions = [i for i, (a, b) in enumerate(spans) if any(a <= p < b for p in positions)]
            critical = np.zeros(len(probs), dtype=bool)
            critical[positions] = True
            results.append(TargetProbs(probs, certainty[row].cpu().numpy()[keep], critical))
    return results


def summarize_target_probs(
    results: Sequence[TargetProbs], low: float = 0.5, beta: float = 150.0
) -> dict[str, float]:
    """Mean p(right) at critical and other tokens, where the low-probability tokens are, and
    the certainty J and prioritized-KL weight J**beta at critical and other tokens."""
    probs = np.concatenate([r.probs for r in results])
    certainty = np.concatenate([r.certainty for r in results])
    critical = np.concatenate([r.critical for r in results])
    weak = probs < low
    weights = certainty.astype(np.float64) ** beta
    return {
        "certainty_critical": float(certainty[critical].mean()) if critical.any() else float("nan"),
        "certainty_other": float(certainty[~critical].mean()),
        "kl_weight_critical": float(weights[critical].mean()) if critical.any() else float("nan"),
        "kl_weight_other": float(weights[~critical].mean()),
        "p_right_critical": float(probs[critical].mean()) if critical.any() else float("nan"),
        "p_right_other": float(probs[~critical].mean()),
        "min_p_other": float(probs[~critical].min()),
        "weak_tokens": int(weak.sum()),
        "weak_share_critical": float(critical[weak].mean()) if weak.any() else float("nan"),
        "critical_share_of_tokens": float(critical.mean()),
    }


def critical_label(token: CriticalToken) -> str:
    """A short name for a critical-token label, e.g. ``L1.op1.comma1`` (line, operand, kind+index)."""
    return f"L{token.line}.op{token.operand}.{token.kind}{token.index}"


@torch.no_grad()
def critical_probabilities(
    model: PreTrainedModel,
    problems: Sequence[ProblemKey],
    comfort_digits: int,
    temperature: float = 1.0,
    task: str = "Addition",
) -> dict[str, float]:
    """Mean p(right token) at each structural critical label of ``task``, on the right prefix (on track)."""
    sums: dict[str, list[float]] = {}
    results = target_token_probs(model, problems, comfort_digits, temperature, task=task)
    for problem, result in zip(problems, results, strict=True):
        for token in critical_tokens_of(task, problem, comfort_digits):
            sums.setdefault(critical_label(token), []).append(float(result.probs[token.position]))
    return {label: float(np.mean(values)) for label, values in sorted(sums.items())}


def failures_at_critical(
    problems: Sequence[tuple[int, int]], texts: Sequence[str], solved: np.ndarray, comfort_digits: int
) -> float:
    """Share of failed episodes whose first wrong token is a structural critical token."""
    hits, failures = 0, 0
    for (a, b), text, ok in zip(problems, texts, solved, strict=True):
        if ok:
            continue
        failures += 1
        where = first_deviation(text, target_text(a, b))
        hits += where in {t.position for t in critical_tokens(a, b, comfort_digits)}
    return hits / failures if failures else float("nan")


def critical_report(
    model: PreTrainedModel,
    comfort_digits: int,
    temperature: float,
    problems: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Where a reference model fails on N+1 digits: teacher-forced probabilities and sampled failures."""
    rng = np.random.default_rng(seed)
    digits = comfort_digits + 1
    batch = problems_with_digits(rng, digits, "varying", problems)
    report = summarize_target_probs(target_token_probs(model, batch, comfort_digits, temperature))
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    solved, texts = play_episodes(
        model, batch, comfort_digits, split_for(digits, comfort_digits), temperature, generator
    )
    report["sampled_accuracy"] = float(solved.mean())
    report["failures_first_wrong_at_critical"] = failures_at_critical(batch, texts, solved, comfort_digits)
    return report

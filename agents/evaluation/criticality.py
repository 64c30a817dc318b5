"""Ground truth for critical tokens: where a sampled episode's outcome is really decided.

For an episode y sampled from π (a reference or an RL checkpoint) and each of its tokens t:
Q_t(a) = P(success | prompt, y_<t, a), estimated by continuations sampled from π and judged by
the environment (:mod:`agents.evaluation.continuations`); V_t = Σ_a π(a) Q_t(a); the plausible
arms A_t = {y_t} ∪ {a : π(a) ≥ ε}. A token is **critical** when its headroom
H_t = max_{a∈A_t} Q_t(a) − V_t is at least 0.5 (one token choice can win back half the odds);
its jump D_t = Q_t(y_t) − V_t says how much the played token moved them (Σ_t D_t = R − V_0).
Estimates and intervals: :mod:`agents.evaluation.headroom`.

Cost is spent only where it can matter. A state whose only plausible arm is the played token
has H_t ≤ 1 − π(y_t) exactly (H = Σ_a π(a)(Q(a*) − Q(a)) ≤ 1 − π(a*)), so it is never critical
at ε ≤ 0.5 / V: no continuation runs there, its H and D are bounded by 1 − π(y_t) (point
estimate V_{t+1}(1 − π(y_t))), and V_t carries back from V_{t+1} (the outcome R after the last
token, known exactly). Where an interval straddles the threshold, more continuations run, up to
``max_samples`` per arm. Positions after the episode first leaves the target are covered too
(rescues happen there), each with inclusion probability ``after_deviation`` (0.25 by default), the
weight 1 / that probability in :mod:`agents.evaluation.selector_metrics`.

Every problem runs on its own generators seeded from (seed, problem index): a table is
deterministic for a seed, and a run interrupted between problems resumes to the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from transformers import PreTrainedModel

from agents.evaluation.continuations import Continuer
from agents.evaluation.criticality_table import ARM_COLUMNS, CriticalityConfig, CriticalityTable, concat
from agents.evaluation.headroom import estimate_arms, straddles
from agents.lm.decoding import choose_tokens
from arith_gym.codec import Codec
from arith_gym.task import ProblemKey, task_problems


@torch.no_grad()
def ground_truth(
    model: PreTrainedModel,
    codec: Codec,
    task: str,
    comfort_digits: int,
    config: CriticalityConfig | None = None,
    seed: int = 0,
    reference: PreTrainedModel | None = None,
    done: Sequence[CriticalityTable] = (),
    on_problem: Callable[[CriticalityTable], None] | None = None,
    progress: Callable[[int], None] | None = None,
    problems: Sequence[ProblemKey] | None = None,
) -> CriticalityTable:
    """The ground truth of ``config.problems`` held-out problems × ``group_size`` episodes of ``model``.

    Args:
        model: the policy π whose episodes and continuations are sampled.
        codec: its tokens (:mod:`arith_gym.codec`).
        reference: the frozen reference the selectors compare with (None: ``model`` itself).
        done: tables of this seed's first problems from an interrupted run (resumed after them).
        on_problem: called with each new problem's table (e.g. to save progress).
        progress: called with the number of problems finished so far.
        problems: the problems to play (default: ``config.problems`` held-out ones drawn with ``seed``).
    """
    reference = model if reference is None else reference
    config = CriticalityConfig() if config is None else config
    if problems is None:
        problems = task_problems(
            task, config.split, comfort_digits, config.problems, seed, problem_set="heldout"
        )
    continuer = Continuer(
        model, codec, task, comfort_digits, config.split, config.temperature, config.batch_size
    )
    tables = list(done)
    for index in range(len(tables), len(problems)):
        table = _problem_table(model, reference, continuer, problems[index], config, seed, index)
        tables.append(table)
        if on_problem is not None:
            on_problem(table)
        if progress is not None:
            progress(index + 1)
    return concat(tables)


def _problem_table(model, reference, continuer, problem: ProblemKey, config, seed, index) -> CriticalityTable:
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed * 1_000_003 + index)
    rng = np.random.default_rng([seed, index])
    prompt = continuer.prompt_ids(problem)
    first_logits = model(input_ids=torch.as_tensor(prompt)[None]).logits[0, -1]
    first = choose_tokens(first_logits.expand(config.group_size, -1), config.temperature, generator)
    episodes = continuer.run(
        problem, np.zeros(0), np.zeros(config.group_size), first.cpu().numpy(), generator, keep=True
    )
    columns = [
        _episode_columns(model, reference, continuer, problem, prompt, episodes, e, config, rng, generator)
        for e in range(config.group_size)
    ]
    table = concat(columns)
    group = seed * 100_000 + index
    return replace(table, seed=np.full(len(table), seed), group=np.full(len(table), group))


def _features(model, reference, prompt: np.ndarray, ids: np.ndarray, temperature: float):
    """The policy's probabilities at each generated token, and the reference's logits and the
    attention each token receives from the tokens after it (the policy's, averaged)."""
    context = torch.as_tensor(np.concatenate([prompt, ids]))[None]
    rows = slice(len(prompt) - 1, len(prompt) - 1 + len(ids))
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")  # the fused kernels return no attention weights
    try:
        out = model(input_ids=context, output_attentions=True)
    finally:
        model.set_attn_implementation(implementation)
    probs = torch.softmax(out.logits[0, rows].double() / temperature, dim=-1)
    ref_logits = out.logits[0, rows] if reference is model else reference(input_ids=context).logits[0, rows]
    weights = torch.stack(out.attentions).mean(dim=(0, 2))[0]  # [S, S] over layers and heads
    keys = torch.arange(len(prompt), len(prompt) + len(ids))
    later = torch.tril(torch.ones_like(weights), diagonal=-1)  # query after key
    received = (weights * later).sum(dim=0) / later.sum(dim=0).clamp(min=1)
    return probs.numpy(), ref_logits.float(), received[keys].numpy()


def _episode_columns(model, reference, continuer, problem, prompt, episodes, e, config, rng, generator):
    ids = episodes.tokens[e]
    length = len(ids)
    probs, ref_logits, attention = _features(model, reference, prompt, ids, config.temperature)
    ref_logprobs = torch.log_softmax(ref_logits.double() / config.temperature, dim=-1).numpy()
    played_prob = probs[np.arange(length), ids]
    on_track = episodes.on_track[e]
    deviated = np.zeros(length, dtype=bool)
    off = np.flatnonzero(~on_track)
    if len(off):
        deviated[off[0] + 1 :] = True  # the state after the first wrong token has already left the target
    arm_sets = [np.union1d(np.flatnonzero(probs[t] >= config.arm_floor), [ids[t]]) for t in range(length)]
    multi = np.array([len(arms) > 1 for arms in arm_sets])
    inclusion = np.where(deviated, config.after_deviation, 1.0)
    included = multi & (~deviated | (rng.random(length) < config.after_deviation))
    counts = _arm_counts(
        continuer, problem, ids, arm_sets, np.flatnonzero(included), config, generator, probs
    )
    estimates = {t: _estimate(probs, ids, arm_sets, counts, t, config, rng) for t in counts}
    stats = _carry_values(estimates, multi, included, played_prob, float(episodes.success[e]))
    arm_rows = [
        (t, a, probs[t, a], s, n)
        for t, (successes, trials) in counts.items()
        for a, s, n in zip(arm_sets[t], successes, trials, strict=True)
    ]
    kinds = (np.int64, np.int64, np.float64, np.int64, np.int64)
    columns = list(zip(*arm_rows, strict=True)) if arm_rows else [[]] * len(kinds)
    arm_columns = [np.array(column, dtype=kind) for column, kind in zip(columns, kinds, strict=True)]
    return CriticalityTable(
        seed=np.zeros(length, dtype=np.int64),
        group=np.zeros(length, dtype=np.int64),
        episode=np.full(length, e),
        position=np.arange(length),
        token=ids,
        reward=np.full(length, float(episodes.success[e])),
        deviated=deviated,
        structural=episodes.critical[e],
        logp=np.log(played_prob),
        entropy=-(probs * np.log(np.clip(probs, 1e-300, None))).sum(axis=1),
        top_prob=probs.max(axis=1),
        # The model as its own reference: exactly its own log-probabilities (not a float re-run).
        ref_logp=np.log(played_prob) if reference is model else ref_logprobs[np.arange(length), ids],
        ref_logits=ref_logits.numpy().astype(np.float16),
        attention=attention,
        arms=np.array([len(arms) for arms in arm_sets]),
        evaluated=included,
        inclusion=inclusion,
        **stats,
        **dict(zip(ARM_COLUMNS, arm_columns, strict=True)),
        threshold=config.threshold,
    )


def _arm_counts(continuer, problem, ids, arm_sets, positions, config, generator, probs):
    """Successes and trials of each arm at ``positions``: ``samples`` continuations per arm, then
    more where H's interval straddles the threshold (``max_samples`` per arm at most)."""
    counts = {int(t): (np.zeros(len(arm_sets[t])), np.zeros(len(arm_sets[t]))) for t in positions}
    pending = [int(t) for t in positions]
    rng = np.random.default_rng(0)  # only for the top-up decision's intervals
    while pending:
        rows_t = np.concatenate([np.repeat(t, len(arm_sets[t]) * config.samples) for t in pending])
        rows_a = np.concatenate([np.repeat(arm_sets[t], config.samples) for t in pending])
        success = continuer.run(problem, ids, rows_t, rows_a, generator).success
        start = 0
        for t in pending:
            size = len(arm_sets[t]) * config.samples
            block = success[start : start + size].reshape(len(arm_sets[t]), config.samples)
            counts[t][0][:] += block.sum(axis=1)
            counts[t][1][:] += config.samples
            start += size
        pending = [
            t
            for t in pending
            if counts[t][1][0] < config.max_samples
            and straddles(_estimate(probs, ids, arm_sets, counts, t, config, rng), config.threshold)
        ]
    return counts


def _estimate(probs, ids, arm_sets, counts, t, config, rng):
    arms = arm_sets[t]
    return estimate_arms(arms, probs[t, arms], *counts[t], ids[t], config.epsilon, rng, config.draws)


def _carry_values(estimates, multi, included, played_prob, reward) -> dict[str, np.ndarray]:
    """The ground-truth columns of one episode: estimated where continuations ran; elsewhere V
    carried back from the next state (V_t = π(y_t) V_{t+1}, the outcome after the last token) and
    H = D = V_{t+1} (1 − π(y_t)) within ±(1 − π(y_t)); NaN where a left-out position breaks the chain."""
    length = len(multi)
    names = ("value", "headroom", "jump")
    out = {f"{n}{s}": np.full(length, np.nan) for n in names for s in ("", "_low", "_high")}
    following = reward  # V after the last token: the episode has ended
    for t in range(length - 1, -1, -1):
        if t in estimates:
            estimate = estimates[t]
            for name in out:
                out[name][t] = getattr(estimate, name)
            following = estimate.value
        elif multi[t] and not included[t]:
            following = np.nan
        else:
            slack = 1.0 - played_prob[t]
            value = played_prob[t] * following
            out["value"][t], out["value_low"][t], out["value_high"][t] = value, value, value + slack
            for name in ("headroom", "jump"):
                out[name][t] = following * slack
                out[f"{name}_low"][t] = 0.0 if name == "headroom" else -slack
                out[f"{name}_high"][t] = slack
            following = value
    return out

"""A critical-token finder that knows nothing of the template: where one mistake loses the answer.

On correct sampled (N+1)-digit episodes it forces a mistake at a position, re-samples the rest
of the episode K times, and compares the success rate with K continuations that keep the
episode's token there. A position is *found* when that drop is large and the reference's
certainty J there is far below the episode's certainty elsewhere; found positions are scored
against the structural critical tokens of ``docs/format.md`` (the data-driven definition there).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from agents.evaluation.certainty_gap import SOURCES, _mean, reference_logits
from agents.evaluation.continuations import Continuer
from agents.kl import certainty
from agents.lm.episodes import play_episodes
from arith_gym.codec import CharacterCodec
from arith_gym.task import ProblemKey, critical_positions, get_task
from arith_gym.tokenizer import encode

POSITION_MODES = ("candidates", "all")
MARGIN_SWEEP = (1.0, 1.5, 2.0, 2.5, 3.0)  # certainty margins the finder's report also scores


# --------------------------------------------------------------------------- forced mistakes


def forced_mistakes(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, samples: int, generator: torch.Generator
) -> torch.Tensor:
    """``samples`` mistakes per row ``[n, samples]``: tokens drawn from ``softmax(logits / T)``
    with the row's own token (``tokens[n]``) removed and the rest renormalised.

    Masking the logit (not the probability) keeps the draw well defined when the token held
    almost all the mass.
    """
    masked = (logits.float() / temperature).scatter(-1, tokens.view(-1, 1), float("-inf"))
    return torch.multinomial(torch.softmax(masked, dim=-1), samples, replacement=True, generator=generator)


# --------------------------------------------------------------------------- finder


@dataclass(frozen=True)
class FinderReport:
    """Every generated position of the analysed episodes (concatenated), and the finder's settings.

    ``forced_rate`` and ``kept_rate`` are the success rates of K continuations after a
    forced mistake at the position and after the episode's own token there; NaN where the
    position was not evaluated (``positions="candidates"`` evaluates only low-certainty ones).
    """

    comfort_digits: int
    source: str
    samples: int
    positions_mode: str
    drop_threshold: float
    certainty_margin: float
    certainty_temperature: float
    certainty_kind: str
    episodes: int
    sampled: int
    episode: np.ndarray
    position: np.ndarray
    token: np.ndarray
    certainty: np.ndarray
    low_certainty: np.ndarray
    forced_rate: np.ndarray
    kept_rate: np.ndarray
    structural: np.ndarray

    @property
    def evaluated(self) -> np.ndarray:
        return ~np.isnan(self.forced_rate)

    @property
    def drop(self) -> np.ndarray:
        """How much a forced mistake lowers the success rate (NaN where not evaluated)."""
        return self.kept_rate - self.forced_rate

    @property
    def found(self) -> np.ndarray:
        fatal = np.nan_to_num(self.drop, nan=-1.0) >= self.drop_threshold
        return self.evaluated & self.low_certainty & fatal

    @property
    def precision(self) -> float:
        return precision_recall(self.found, self.structural)[0]

    @property
    def recall(self) -> float:
        return precision_recall(self.found, self.structural)[1]

    def recall_by_kind(self) -> dict[str, float]:
        """Recall at the structural critical commas and digits apart: a model can be sure of a
        digit's copy once it has chosen to continue the list, and unsure only at the comma."""
        commas = self.token == ","
        return {
            "comma": precision_recall(self.found, self.structural & commas)[1],
            "digit": precision_recall(self.found, self.structural & ~commas)[1],
        }


def precision_recall(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of boolean ``found`` against ``truth`` (NaN when undefined)."""
    hits = int((found & truth).sum())
    precision = hits / found.sum() if found.any() else float("nan")
    return float(precision), float(hits / truth.sum() if truth.any() else float("nan"))


def low_certainty(j: np.ndarray, margin: float) -> np.ndarray:
    """Positions whose J lies more than ``margin`` standard deviations below the mean J of
    the episode's other positions (leave-one-out, so a very low J does not lower its own bar)."""
    n = len(j)
    if n < 3:
        return np.zeros(n, dtype=bool)
    j = j.astype(np.float64)
    mean = (j.sum() - j) / (n - 1)
    variance = ((j * j).sum() - j * j - (n - 1) * mean * mean) / (n - 2)
    return j < mean - margin * np.sqrt(np.clip(variance, 0.0, None))


def _correct_episodes(
    model, comfort_digits, split, count, source, temperature, rng, generator, batch_size, max_sampled, task
) -> tuple[list[ProblemKey], list[str], int]:
    """Up to ``count`` sampled episodes that are exactly the target text, and how many were sampled.

    Exactly the target, not merely correct: the structural positions must index the text.
    """
    rules = get_task(task)

    def target(problem: ProblemKey) -> str:
        return rules.target(problem, comfort_digits)[0]

    if source == "target":
        problems = [rules.sample(rng, split, comfort_digits, "all") for _ in range(count)]
        return problems, [target(problem) for problem in problems], count
    problems, texts, sampled = [], [], 0
    while len(problems) < count and sampled < max_sampled:
        size = min(batch_size, max_sampled - sampled)
        batch = [rules.sample(rng, split, comfort_digits, "all") for _ in range(size)]
        solved, played = play_episodes(
            model, batch, comfort_digits, split, temperature, generator, size, task=task
        )
        sampled += len(batch)
        for problem, ok, text in zip(batch, solved, played, strict=True):
            if ok and text == target(problem) and len(problems) < count:
                problems.append(problem)
                texts.append(text)
    return problems, texts, sampled


def find_critical_tokens(
    model: PreTrainedModel,
    comfort_digits: int,
    temperature: float = 1.0,
    episodes: int = 16,
    samples: int = 8,
    positions: str = "candidates",
    drop_threshold: float = 0.5,
    certainty_margin: float = 2.0,
    certainty_temperature: float = 4.0,
    certainty_kind: str = "negentropy",
    split: str = "plus1",
    source: str = "sampled",
    seed: int = 0,
    batch_size: int = 128,
    max_sampled: int | None = None,
    progress: bool = False,
    task: str = "Addition",
) -> FinderReport:
    """Find critical tokens from data: a forced mistake there loses the answer, and J is low there.

    For each of ``episodes`` correct episodes (``source="target"``: right texts of fresh
    problems) and each generated position t: J from one forward; K = ``samples`` mistakes
    drawn from the reference at ``temperature`` without the episode's token, each continued
    to the end, against K continuations that keep the episode's token. Found = drop in
    success rate ``>= drop_threshold`` and :func:`low_certainty` with ``certainty_margin``.

    ``positions="candidates"`` runs the continuations only at low-certainty positions: the
    found set is the same (both conditions must hold) at a fraction of the cost; ``"all"``
    runs them everywhere, which also measures the drop alone. At most ``max_sampled``
    (default 32 per wanted episode) episodes are sampled to find correct ones.
    """
    if positions not in POSITION_MODES:
        raise ValueError(f"positions must be one of {POSITION_MODES}, got {positions!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    # Finished rows stay in the batch (drop_share=None): the draws, and so the report of
    # docs/analysis.md, are those of the finder's former branch decoder.
    codec = CharacterCodec(get_task(task).vocab_size)
    continuer = Continuer(model, codec, task, comfort_digits, split, temperature, batch_size, drop_share=None)
    cap = max_sampled if max_sampled is not None else 32 * episodes
    problems, texts, sampled = _correct_episodes(
        model, comfort_digits, split, episodes, source, temperature, rng, generator, batch_size, cap, task
    )
    columns = []
    episodes_bar = tqdm(list(zip(problems, texts, strict=True)), desc="finder", disable=not progress)
    for index, (problem, text) in enumerate(episodes_bar):
        logits = reference_logits(model, [problem], [text], task=task)[0][: len(text)]
        j = certainty(logits, certainty_temperature, certainty_kind).numpy()
        low = low_certainty(j, certainty_margin)
        where = np.arange(len(text)) if positions == "all" else np.flatnonzero(low)
        kept, forced = _success_rates(continuer, problem, text, logits, where, samples, generator)
        structural = critical_positions(task, problem, comfort_digits, len(text))
        characters = np.array(list(text), dtype=str)
        columns.append(
            (np.full(len(text), index), np.arange(len(text)), characters, j, low, forced, kept, structural)
        )
    empty = [np.zeros(0, dtype=kind) for kind in (int, int, str, float, bool, float, float, bool)]
    return FinderReport(
        comfort_digits,
        source,
        samples,
        positions,
        drop_threshold,
        certainty_margin,
        certainty_temperature,
        certainty_kind,
        len(problems),
        sampled,
        *([np.concatenate(column) for column in zip(*columns, strict=True)] if columns else empty),
    )


def _success_rates(
    continuer: Continuer, problem, text, logits, where, samples, generator
) -> tuple[np.ndarray, np.ndarray]:
    """Success rates of K branches keeping the episode's token and K after a forced mistake, at
    positions ``where`` (NaN elsewhere)."""
    kept_rate, forced_rate = np.full(len(text), np.nan), np.full(len(text), np.nan)
    if len(where) == 0:
        return kept_rate, forced_rate
    ids = torch.as_tensor(encode(text))
    mistakes = forced_mistakes(logits[where], ids[where], continuer.temperature, samples, generator)
    # K kept then K forced rows per position, in order of position: a chunk's rows then end at
    # about the same time, so the batch does not idle on a few long ones.
    tokens = torch.cat([ids[where][:, None].expand(-1, samples), mistakes], dim=1).reshape(-1).numpy()
    success = continuer.run(problem, ids.numpy(), np.repeat(where, 2 * samples), tokens, generator).success
    kept_rate[where], forced_rate[where] = success.reshape(len(where), 2, samples).mean(axis=2).T
    return kept_rate, forced_rate


# --------------------------------------------------------------------------- report


def format_finder(report: FinderReport) -> str:
    """The finder's settings, precision and recall per criterion, and what it found, Markdown-friendly."""
    r = report
    structural, evaluated = r.structural, r.evaluated
    lines = [
        f"**Critical-token finder**: {r.episodes} correct {r.source} episodes (of {r.sampled} sampled),"
        f" {len(r.position)} positions, {int(structural.sum())} structural critical;"
        f" K={r.samples} continuations after a forced mistake and K after the episode's token"
        f" at {int(evaluated.sum())} positions ({r.positions_mode})",
        f"found = drop in success >= {r.drop_threshold:g} and J < mean - {r.certainty_margin:g} sd"
        " of the episode's other positions",
        "",
        "| criterion | flagged | structural among them | precision | recall |",
        "|---|---|---|---|---|",
        _row(f"low certainty ({r.certainty_margin:g} sd)", r.low_certainty, structural),
    ]
    if len(evaluated) and evaluated.all():
        lines.append(_row(f"drop >= {r.drop_threshold:g}", r.drop >= r.drop_threshold, structural))
    lines.append(_row("found (both)", r.found, structural))
    by_kind = r.recall_by_kind()
    commas = r.token == ","
    sweep = ", ".join(
        "{:g} sd: {:.2f} / {:.2f}".format(m, *precision_recall(_low_per_episode(r, m), structural))
        for m in MARGIN_SWEEP
    )
    drop = r.drop
    lines += [
        "",
        f"- low certainty alone, precision / recall by margin: {sweep}",
        f"- mean J: {_mean(r.certainty[structural]):.3f} at structural critical positions,"
        f" {_mean(r.certainty[~structural]):.3f} elsewhere",
        f"- mean drop where evaluated: {_mean(drop[evaluated & structural]):.2f} at structural critical"
        f" positions, {_mean(drop[evaluated & ~structural]):.2f} elsewhere",
        f"- recall of found (both) by kind: {by_kind['comma']:.2f} at the"
        f" {int((structural & commas).sum())} structural commas, {by_kind['digit']:.2f} at the"
        f" {int((structural & ~commas).sum())} structural digits",
        f"- found, by character (structural/all): {_by_char(r.token[r.found], structural[r.found])}",
        f"- structural missed, by character: {_by_char(r.token[structural & ~r.found])}",
    ]
    return "\n".join(lines) + "\n"


def _low_per_episode(report: FinderReport, margin: float) -> np.ndarray:
    low = np.zeros(len(report.certainty), dtype=bool)
    for episode in range(report.episodes):
        rows = report.episode == episode
        low[rows] = low_certainty(report.certainty[rows], margin)
    return low


def _row(name: str, flagged: np.ndarray, truth: np.ndarray) -> str:
    precision, recall = precision_recall(flagged, truth)
    hits = int((flagged & truth).sum())
    return f"| {name} | {int(flagged.sum())} | {hits} | {precision:.2f} | {recall:.2f} |"


def _by_char(chars: np.ndarray, structural: np.ndarray | None = None) -> str:
    if len(chars) == 0:
        return "none"
    counts = Counter(chars.tolist())
    if structural is None:
        return ", ".join(f"{c!r} {n}" for c, n in counts.most_common())
    hits = Counter(chars[structural].tolist())
    return ", ".join(f"{c!r} {hits[c]}/{n}" for c, n in counts.most_common())

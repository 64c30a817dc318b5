"""The certainty gap and the critical-token finder (agents/evaluation/), on micro models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.cli import main
from agents.evaluation.certainty_gap import certainty_gap, format_gap, on_track_length
from agents.evaluation.continuations import Continuer
from agents.evaluation.finder import (
    FinderReport,
    find_critical_tokens,
    forced_mistakes,
    format_finder,
    low_certainty,
    precision_recall,
)
from agents.evaluation.stats import mean_ci
from agents.lm.decoding import CachedDecoder
from agents.lm.model import load_reference
from arith_gym.codec import CharacterCodec
from arith_gym.scratchpad import critical_tokens, prompt_text, target_text
from arith_gym.tokenizer import PAD_ID, TOKEN_TO_ID, VOCAB_SIZE, encode

PROBLEM = (47, 8)  # a 2-digit operand: critical tokens for N=1


@pytest.fixture(scope="module")
def micro(micro_reference_dir):
    model, task = load_reference(micro_reference_dir)
    return model, task.comfort_digits


def test_mean_ci_is_the_hand_computed_t_interval():
    # mean 3, sample sd sqrt(2.5), n 5: half-width t(0.975, 4) * sd / sqrt(5) = 2.776445 * 0.7071068
    estimate = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (estimate.mean, estimate.low, estimate.high) == pytest.approx((3.0, 1.036757, 4.963243), abs=1e-5)


def test_on_track_length_counts_positions_with_an_on_track_context():
    target = target_text(*PROBLEM)
    assert on_track_length(target, target) == len(target)
    assert on_track_length(target[:5] + "x" + target[6:], target) == 6  # the deviation's context is on track
    assert on_track_length(target[:9], target) == 10  # stopped early: the pad's position counts
    assert on_track_length(target + "1 2\n", target) == len(target)  # ran on past the target


def test_low_certainty_flags_only_far_outliers_and_precision_recall():
    j = np.full(50, 0.6) + np.linspace(-0.01, 0.01, 50)
    j[[7, 30]] = [0.2, 0.59]
    assert np.flatnonzero(low_certainty(j, 2.0)).tolist() == [7]
    assert not low_certainty(j[:2], 0.0).any()  # too few positions for a spread
    found, truth = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    assert precision_recall(found, truth) == (0.5, 0.5)
    assert math.isnan(precision_recall(np.zeros(4, bool), truth)[0])


def test_forced_mistakes_never_repeat_the_episode_token():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, VOCAB_SIZE, generator=generator)
    tokens = torch.randint(0, VOCAB_SIZE, (64,), generator=generator)
    logits[torch.arange(32), tokens[:32]] += 80.0  # half the rows: the token holds ~all the mass
    mistakes = forced_mistakes(logits, tokens, 1.0, 16, generator)
    assert mistakes.shape == (64, 16)
    assert (mistakes != tokens[:, None]).all()
    assert ((mistakes >= 0) & (mistakes < VOCAB_SIZE)).all()


@torch.no_grad()
def test_branch_decoder_continues_each_row_like_a_full_forward(micro):
    model, _ = micro
    prompt, ids = encode(prompt_text(*PROBLEM)), encode(target_text(*PROBLEM))
    lengths = np.array([0, 3, 20, 41])
    tokens = torch.tensor([5, 11, 3, 27])
    decoder = CachedDecoder.branches(model, np.concatenate([prompt, ids[:41]]), len(prompt) + lengths)
    cached = decoder.step(tokens).logits[:, -1]
    for row, length in enumerate(lengths):
        full = torch.as_tensor(np.concatenate([prompt, ids[:length], [int(tokens[row])]]))[None]
        torch.testing.assert_close(cached[row], model(input_ids=full).logits[0, -1], atol=1e-4, rtol=1e-4)


def test_continuations_are_judged_by_the_env(micro):
    model, _ = micro
    text = target_text(*PROBLEM)
    last, wrong_digit = len(text) - 1, TOKEN_TO_ID["0"] if text[-2] != "0" else TOKEN_TO_ID["1"]
    positions = np.array([last, last, last - 1])
    tokens = np.array([TOKEN_TO_ID["\n"], PAD_ID, wrong_digit])
    generator = torch.Generator().manual_seed(0)
    codec = CharacterCodec(VOCAB_SIZE)
    ids = encode(text)
    solved = (
        Continuer(model, codec, "Addition", 1, "plus1")
        .run(PROBLEM, ids, positions, tokens, generator)
        .success
    )
    # the right newline ends a right episode; a pad ends it with no result line; a wrong last digit
    # cannot be right whatever follows.
    assert solved.tolist() == [True, False, False]
    # Truncated before the result line's newline: wrong, as the env's truncation is.
    keep = np.array([TOKEN_TO_ID[text[last - 1]]])
    short = Continuer(model, codec, "Addition", 1, "plus1", max_episode_steps=last)
    assert not short.run(PROBLEM, ids, np.array([last - 1]), keep, generator).success[0]


def test_certainty_gap_is_well_formed(micro):
    model, digits = micro
    gap = certainty_gap(model, digits, episodes=12, source="target", seed=1)
    assert gap.used == 12 and gap.gaps.shape == gap.critical.shape == gap.other.shape == (12,)
    assert ((gap.critical >= 0) & (gap.critical <= 1) & (gap.other >= 0) & (gap.other <= 1)).all()
    np.testing.assert_allclose(gap.gaps, gap.critical - gap.other)
    assert gap.low <= gap.gap <= gap.high and gap.gap == pytest.approx(gap.gaps.mean())
    assert gap.accuracy == 1.0
    assert "critical minus other" in format_gap(gap)


def test_certainty_gap_of_sampled_episodes_is_seeded(micro):
    model, digits = micro
    first, again = (certainty_gap(model, digits, episodes=8, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first.gaps, again.gaps)
    assert first.accuracy == again.accuracy and 0 <= first.accuracy <= 1 and first.used <= 8
    other = certainty_gap(
        model, digits, episodes=8, seed=3, certainty_kind="max_prob", certainty_temperature=1
    )
    assert other.certainty_kind == "max_prob"


def test_finder_at_every_position_is_well_formed(micro):
    model, digits = micro
    report = find_critical_tokens(
        model, digits, episodes=1, samples=1, positions="all", source="target", seed=0, batch_size=512
    )
    n = len(report.position)
    assert report.episodes == 1 and n > 0
    for column in (report.episode, report.token, report.certainty, report.low_certainty, report.structural):
        assert len(column) == n
    assert report.evaluated.all()
    for rate in (report.forced_rate, report.kept_rate):
        assert np.isin(rate, [0.0, 1.0]).all()  # one sample each
    assert ((report.drop >= -1) & (report.drop <= 1)).all()
    assert not (report.found & ~report.low_certainty).any()
    assert report.structural.sum() == len(critical_tokens(*_problem_of(report), digits))
    assert all(math.isnan(v) or 0 <= v <= 1 for v in (report.precision, report.recall))
    text = format_finder(report)
    assert (
        "| found (both) |" in text and "| drop >= 0.5 |" in text and "recall of found (both) by kind" in text
    )


def test_finder_recall_by_kind_counts_commas_and_digits_apart():
    # Structural: two commas (one found) and two digits (none found); one non-structural found.
    tokens = np.array([",", "4", ",", "5", "]"])
    low = np.array([True, False, True, True, True])
    report = FinderReport(
        *(3, "target", 4, "all", 0.5, 2.0, 4.0, "negentropy", 1, 1),
        episode=np.zeros(5, dtype=int),
        position=np.arange(5),
        token=tokens,
        certainty=np.array([0.2, 0.9, 0.3, 0.4, 0.3]),
        low_certainty=low,
        forced_rate=np.array([0.0, 0.0, 0.75, 0.25, 0.0]),
        kept_rate=np.ones(5),
        structural=np.array([True, True, True, True, False]),
    )
    np.testing.assert_array_equal(report.found, [True, False, False, True, True])
    assert report.recall_by_kind() == {"comma": 0.5, "digit": 0.5}
    assert (report.precision, report.recall) == (2 / 3, 0.5)
    assert "0.50 at the 2 structural commas, 0.50 at the 2 structural digits" in format_finder(report)


def _problem_of(report) -> tuple[int, int]:
    """The finder's only problem, found again from its seeded draw (source="target")."""
    from arith_gym.operands import sample_operands

    return sample_operands(np.random.default_rng(0), "plus1", report.comfort_digits)


def test_finder_is_seeded_and_copes_without_correct_episodes(micro):
    model, digits = micro
    runs = [
        find_critical_tokens(
            model, digits, episodes=2, samples=3, source="target", seed=5, certainty_margin=1.0
        )
        for _ in range(2)
    ]
    assert runs[0].evaluated.any()
    for name in ("certainty", "forced_rate", "kept_rate", "low_certainty", "structural"):
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name))
    # The untrained micro model never solves a problem: nothing to analyse, but a report still.
    empty = find_critical_tokens(model, digits, episodes=1, samples=2, seed=0, max_sampled=8)
    assert (empty.episodes, empty.sampled, len(empty.position)) == (0, 8, 0)
    assert "0 correct sampled episodes (of 8 sampled)" in format_finder(empty)


def test_cli_analyze_runs_on_a_tiny_budget(micro_reference_dir, capsys):
    argv = ["analyze", str(micro_reference_dir), "--episodes", "6", "--finder-episodes", "1"]
    assert main([*argv, "--samples", "1", "--episodes-from", "target", "--certainty-margin", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "N=1, T=1, seed 0" in out and "**Certainty gap**" in out and "**Critical-token finder**" in out
    assert main([*argv, "--samples", "0"]) == 2
    assert "samples must be at least 1" in capsys.readouterr().err


def test_critical_mask_marks_the_structural_positions_within_length():
    from arith_gym.scratchpad import critical_mask, critical_tokens, target_text

    a, b = 12345, 678
    positions = [t.position for t in critical_tokens(a, b, 3)]
    mask = critical_mask(a, b, 3)
    assert len(mask) == len(target_text(a, b)) and np.flatnonzero(mask).tolist() == positions
    cut = positions[2]
    assert np.flatnonzero(critical_mask(a, b, 3, cut)).tolist() == positions[:2]
    assert not critical_mask(12, 34, 3).any()

"""The criticality benchmark: ground truth against a planted model with a known answer, its
determinism, the selector metrics against hand-computed numbers, and the command."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import quick_criticality

from agents.cli import main
from agents.evaluation.criticality import ground_truth
from agents.evaluation.criticality_table import CriticalityConfig, CriticalityTable, concat, relabel
from agents.evaluation.planted import PlantedModel
from agents.evaluation.selector_metrics import average_precision, ranked_recall
from agents.lm.model import load_reference
from arith_gym.codec import CharacterCodec
from arith_gym.task import get_task
from arith_gym.tokenizer import PAD_ID, VOCAB_SIZE, encode

PROBLEM = (4821, 365)
CODEC = CharacterCodec(VOCAB_SIZE)


def planted_truth(sites: dict[int, float], episodes: int, seed: int = 0, **settings) -> tuple:
    addition = get_task("Addition")
    target = encode(addition.target(PROBLEM, 3)[0])
    model = PlantedModel(encode(addition.prompt(PROBLEM)), target, sites, VOCAB_SIZE)
    config = CriticalityConfig(problems=1, group_size=episodes, **settings)
    table = ground_truth(model, CODEC, "Addition", 3, config, seed, problems=[PROBLEM])
    return model, table


@pytest.mark.parametrize("p", [0.5, 0.02, 0.98])
def test_planted_sites_are_found_and_their_headroom_is_exact_where_continuations_cannot_fail(p):
    sites = {40: p, 90: p}
    model, table = planted_truth(sites, episodes=12)  # 8 continuations per arm, up to 32 if unsure
    on_target = ~table.deviated
    for site in sites:
        rows = on_target & (table.position == site)
        if site > min(sites) and not rows.any():
            continue  # no episode got past the first site (p = 0.02: likely)
        assert rows.any()
        assert table.evaluated[rows].all() and (table.arms[rows] == 2).all()
        if site == max(sites):  # after the last site nothing can fail: the estimate is exact
            np.testing.assert_allclose(
                table.headroom[rows & (table.token != PAD_ID)], model.headroom(site), atol=1e-12
            )
    elsewhere = on_target & ~np.isin(table.position, list(sites))
    assert (table.arms[elsewhere] == 1).all() and not table.evaluated[elsewhere].any()
    assert (table.headroom[elsewhere] == 0).all() and (table.headroom_high[elsewhere] == 0).all()
    reached = set(table.position[on_target].tolist())
    expected = {s for s in sites if model.headroom(s) >= 0.5 and s in reached}
    assert set(table.position[table.critical & on_target].tolist()) == expected


def test_planted_intervals_cover_the_known_headroom_about_95_percent_of_the_time():
    sites = {30: 0.5, 60: 0.5, 90: 0.5}  # H = 0.125, 0.25, 0.5 on the target; Q(right) = 0.25, 0.5, 1
    model, table = planted_truth(sites, episodes=160, seed=3, samples=8, max_samples=8)
    rows = ~table.deviated & np.isin(table.position, list(sites)) & (table.token != PAD_ID)
    truth = np.array([model.headroom(int(s)) for s in table.position[rows]])
    covered = (table.headroom_low[rows] <= truth) & (truth <= table.headroom_high[rows])
    noisy = truth < 0.5  # the last site's estimate is exact
    assert noisy.sum() >= 100
    assert 0.88 <= covered[noisy].mean() <= 0.995, covered[noisy].mean()


def test_ground_truth_is_deterministic_for_a_seed_and_resumes_to_the_same_table(
    micro_reference_dir, tmp_path
):
    model, info = load_reference(micro_reference_dir)
    # Only arms the micro model gives 30 %, few positions after a deviation: seconds, not minutes.
    config = CriticalityConfig(
        problems=2,
        group_size=2,
        epsilon=0.3,
        arm_floor=0.3,
        samples=2,
        max_samples=4,
        after_deviation=0.1,
        draws=100,
    )
    first = ground_truth(model, CODEC, "Addition", info.comfort_digits, config, seed=5)
    saved = []
    ground_truth(model, CODEC, "Addition", info.comfort_digits, config, 5, on_problem=saved.append)
    resumed = ground_truth(model, CODEC, "Addition", info.comfort_digits, config, 5, done=saved[:1])
    first.save(tmp_path / "t.npz")
    loaded = CriticalityTable.load(tmp_path / "t.npz")
    for table in (resumed, loaded, concat(saved)):
        for name in ("token", "headroom", "headroom_low", "value", "arm_successes", "ref_logits"):
            np.testing.assert_array_equal(getattr(table, name), getattr(first, name))
    # V after the last token is the outcome; D sums to R - V_0 within the estimates' slack.
    assert set(np.unique(first.reward)) <= {0.0, 1.0}


def test_relabel_at_a_coarser_epsilon_reuses_the_arms_and_keeps_v_and_d():
    sites = {40: 0.5, 90: 0.995}  # the second site's pad (0.005) is plausible at 1e-3, not at 1e-2
    model, table = planted_truth(sites, episodes=8)
    coarse = relabel(table, epsilon=1e-2, threshold=0.5)
    np.testing.assert_array_equal(coarse.value, table.value)
    np.testing.assert_array_equal(coarse.jump, table.jump)
    on_target = ~table.deviated & (table.position == 90) & (table.token != PAD_ID)
    assert on_target.any()
    # At 1e-3 the max over {right, pad} is the right token: H = 0.005; at 1e-2 the pad is no arm of
    # H, the played right token alone: H = Q(right) - V, the same number here.
    np.testing.assert_allclose(coarse.headroom[on_target], table.headroom[on_target])
    # A state where the pad was played: at 1e-2 only the played (fatal) pad is plausible: H <= 0.
    pad_rows = ~table.deviated & (table.position == 90) & (table.token == PAD_ID)
    assert (coarse.headroom[pad_rows] <= 0).all()
    assert relabel(table, 1e-3, 0.9).threshold == 0.9


def test_average_precision_and_ranked_recall_against_hand_computed_numbers():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    labels = np.array([True, False, True, False, True])
    weights = np.ones(5)
    # Levels: {0.9}: 1/1; {0.8, 0.8}: 2/3 at recall 2/3; {0.3}: skip; {0.1}: 3/5 at recall 1.
    assert average_precision(scores, labels, weights) == pytest.approx(
        (1 / 3) * 1 + (1 / 3) * (2 / 3) + (1 / 3) * 0.6
    )
    # Top 40 % = 2 of 5 tokens: the 0.9 and half the tied 0.8 block (one label in it, pro rata 0.5).
    assert ranked_recall(scores, labels, weights, 0.4) == pytest.approx((1 + 0.5) / 3)
    # A constant score is random: AP = the base rate, recall@k = k.
    assert average_precision(np.zeros(5), labels, weights) == pytest.approx(0.6)
    assert ranked_recall(np.zeros(5), labels, weights, 0.2) == pytest.approx(0.2)
    # Weights count a token that many times.
    assert ranked_recall(scores, labels, np.array([1, 1, 1, 1, 4.0]), 0.5) == pytest.approx((1 + 1) / 6)


def test_criticality_command_scores_every_selector_and_resumes(micro_reference_dir, tmp_path, capsys):
    out = tmp_path / "crit"
    argv = quick_criticality(micro_reference_dir, out, seeds="0,1")
    assert main(argv) == 0
    summary = (out / "summary.md").read_text()
    for name in (
        "critical_auto",
        "oracle_critical",
        "entropy_topk",
        "archer",
        "kl_cov",
        "random",
        "group_fork",
    ):
        assert f"| {name} |" in summary
    assert "value_jump (needs values)" in summary
    stamps = sorted(p.stat().st_mtime_ns for p in out.glob("seed*/problem*.npz"))
    assert main(argv) == 0  # resumed: nothing recomputed
    assert sorted(p.stat().st_mtime_ns for p in out.glob("seed*/problem*.npz")) == stamps
    # Another epsilon re-reads the same ground truth (no sampling), reported elsewhere.
    assert main([*argv, "--epsilon", "0.5", "--report", str(tmp_path / "coarse")]) == 0
    assert (tmp_path / "coarse" / "summary.md").is_file()
    assert sorted(p.stat().st_mtime_ns for p in out.glob("seed*/problem*.npz")) == stamps
    assert main([*argv[:-2], "--resamples", "20", "--samples", "1"]) == 2  # other settings, same --out
    assert "other settings" in capsys.readouterr().err

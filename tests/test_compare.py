"""The multi-seed comparison (agents/experiments/, ``arith-rl compare``) on a tiny budget."""

from __future__ import annotations

import csv
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agents import MissingExtra
from agents.evaluation.heldout import EvalSet, heldout_eval_set
from agents.evaluation.stats import paired_difference
from agents.experiments.compare import compare
from agents.experiments.jobs import CompareSettings, episodes_done
from agents.experiments.reports import shared_eval_set
from agents.experiments.results import oracle_gap_markdown, summarize_methods, summary_markdown
from agents.experiments.runners import run_ray
from agents.rl.config import PRESETS
from arith_gym.operands import is_heldout

TINY = (
    ("episodes_per_update", 4),
    ("total_episodes", 8),
    ("eval_every", 1),
    ("eval_episodes", 4),
    ("final_eval_episodes", 6),  # the final evaluation: all 6 (5 comfort); the earlier ones the first 4
    ("final_comfort_episodes", 5),
    ("eval_greedy", False),
    ("value_hidden", (8,)),
    ("minibatches", 1),
)


def _settings(micro_reference_dir, **changes) -> CompareSettings:
    values = dict(
        methods=("uniform", "critical"), seeds=(0, 1), overrides=TINY, reference=str(micro_reference_dir)
    )
    return CompareSettings(**{**values, **changes})


def _read(path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def compared(micro_reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    summary = compare(
        _settings(micro_reference_dir),
        out,
        workers=2,
        progress=False,
        command="arith-rl compare",
        passk_samples=2,
        passk_problems=3,
    )
    return out, summary


def test_compare_writes_csvs_plots_and_summary(compared):
    out, summary = compared
    for name in ("evaluations.csv", "critical.csv", "runs.csv", "accuracy.png", "critical.png", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    rows = _read(out / "evaluations.csv")
    runs = {(r["method"], r["seed"]) for r in rows}
    assert runs == {("uniform", "0"), ("uniform", "1"), ("critical", "0"), ("critical", "1")}
    # 3 evaluations per run (episodes 0, 4, 8), sampled on comfort and plus1
    assert sorted({int(r["episodes"]) for r in rows}) == [0, 4, 8]
    assert len(rows) == 4 * 3 * 2 and {r["split"] for r in rows} == {"comfort", "plus1"}
    text = summary.read_text()
    assert "| critical | 2 |" in text and "| uniform | 2 |" in text and "`critical`" in text
    runs = _read(out / "runs.csv")
    assert len(runs) == 4 and all(float(r["seconds_per_episode"]) > 0 and r["episodes"] == "8" for r in runs)
    assert "training s / episode" in text


def test_every_run_is_evaluated_on_the_same_saved_heldout_set(compared):
    out, summary = compared
    shared = EvalSet.load(out / "eval_set.json")
    for run in (out / "runs").iterdir():
        assert EvalSet.load(run / "eval_set.json") == shared
    assert all(is_heldout(a, b) for pairs in shared.problems.values() for a, b in pairs)
    assert (len(shared.problems["plus1"]), len(shared.problems["comfort"])) == (6, 5)
    rows = _read(out / "evaluations.csv")
    final = {(r["split"], r["problems"]) for r in rows if r["episodes"] == "8"}
    earlier = {(r["split"], r["problems"]) for r in rows if r["episodes"] != "8"}
    assert final == {("plus1", "6"), ("comfort", "5")} and earlier == {("plus1", "4"), ("comfort", "4")}
    # the curves stay on the intermediate problems to the last point (the final one's first 4)
    assert {(r["split"], r["curve_problems"]) for r in rows} == {("plus1", "4"), ("comfort", "4")}
    for r in rows:
        if r["episodes"] != "8":
            assert r["curve_accuracy"] == r["accuracy"]
    text = summary.read_text()
    assert "## Which noise dominates" in text and "binomial SD" in text
    assert "| ppo-critical-s0 | " in text and "(n=6)" in text and "(n=5)" in text


def test_compare_passk_of_the_reference_and_every_final_checkpoint(compared):
    out, summary = compared
    rows = _read(out / "passk.csv")
    assert {(r["model"], r["seed"]) for r in rows} == {
        ("reference", "-1"),
        *((method, str(seed)) for method in ("uniform", "critical") for seed in (0, 1)),
    }
    assert {r["k"] for r in rows} == {"1", "2"} and {r["problems"] for r in rows} == {"3"}
    assert (out / "passk.png").stat().st_size > 0 and "## pass@k" in summary.read_text()


def test_runs_on_other_problems_are_refused(compared, micro_reference_dir, tmp_path):
    out, _ = compared
    jobs = _settings(micro_reference_dir).jobs(out)
    other = heldout_eval_set(1, "plus1", 6, 5, seed=99)
    copies = []
    for job in jobs:
        run = tmp_path / job.name
        run.mkdir()
        text = (
            other.to_json()
            if job.name == "ppo-uniform-s1"
            else Path(job.run_dir, "eval_set.json").read_text()
        )
        (run / "eval_set.json").write_text(text)
        copies.append(replace(job, run_dir=str(run)))
    with pytest.raises(ValueError, match="run ppo-uniform-s1 was evaluated on other problems than run ppo-"):
        shared_eval_set(copies, tmp_path)


def test_summary_numbers_match_the_csv(compared):
    out, _ = compared
    rows = _read(out / "evaluations.csv")

    def final(method: str) -> list[float]:
        return [
            float(r["accuracy"])
            for seed in ("0", "1")
            for r in rows
            if r["method"] == method and r["seed"] == seed and r["split"] == "plus1" and r["episodes"] == "8"
        ]

    results, _ = summarize_methods(
        [
            {
                **r,
                "seed": int(r["seed"]),
                "eval_index": int(r["eval_index"]),
                "accuracy": float(r["accuracy"]),
                "episodes": int(r["episodes"]),
            }
            for r in rows
        ],
        "plus1",
    )
    critical = next(r for r in results if r.label == "critical")
    expected = paired_difference(final("critical"), final("uniform"))
    assert critical.difference.mean == pytest.approx(expected.mean)
    assert critical.final.mean == pytest.approx(sum(final("critical")) / 2)


def test_rerun_keeps_finished_runs(compared, micro_reference_dir):
    out, summary = compared
    before = (out / "runs" / "ppo-uniform-s0" / "metrics.csv").read_text()
    compare(_settings(micro_reference_dir), out, workers=1, progress=False)
    assert (out / "runs" / "ppo-uniform-s0" / "metrics.csv").read_text() == before


def test_a_resumed_comparison_counts_the_episodes_already_trained(compared, micro_reference_dir):
    out, _ = compared
    finished = _settings(micro_reference_dir).jobs(out)
    fresh = _settings(micro_reference_dir, seeds=(7,)).jobs(out)
    assert [episodes_done(job) for job in finished] == [8, 8, 8, 8]
    assert [episodes_done(job) for job in fresh] == [0, 0]


def _evaluation_rows(finals: dict[str, list[float]], start: float = 0.1) -> list[dict]:
    """Evaluation rows of runs that start at ``start`` and end at ``finals[method][seed]`` on plus1
    (comfort 0.9 throughout), one PPO run per method and seed."""
    rows = []
    for method, lasts in finals.items():
        for seed, last in enumerate(lasts):
            for index, (episodes, accuracy) in enumerate([(0, start), (64, last)]):
                for split, value in (("plus1", accuracy), ("comfort", 0.9)):
                    rows.append(
                        dict(
                            algo="ppo",
                            method=method,
                            seed=seed,
                            eval_index=index,
                            episodes=episodes,
                            split=split,
                            mode="sampled",
                            accuracy=value,
                        )
                    )
    return rows


def test_threshold_and_verdict_wording():
    rows = _evaluation_rows({"uniform": [0.1, 0.2, 0.1], "critical": [0.3, 0.35, 0.32]})
    results, threshold = summarize_methods(rows, "plus1")
    assert threshold == pytest.approx(0.25)
    critical = next(r for r in results if r.label == "critical")
    assert critical.reached == 3 and critical.episodes_to_threshold.mean == 64
    text = summary_markdown(results, "plus1", threshold)
    assert "`critical` beat `uniform`: +19.0 points" in text
    assert "not reached (0/3)" in text


def test_the_final_is_on_all_problems_and_the_threshold_on_the_curve():
    # the final evaluation: 0.2 on all problems, 0.3 on the intermediate ones (its curve point)
    rows = _evaluation_rows({"uniform": [0.1, 0.1], "critical": [0.2, 0.2]})
    for row in rows:
        row["curve_accuracy"] = (
            0.3 if row["method"] == "critical" and row["episodes"] == 64 else row["accuracy"]
        )
    results, threshold = summarize_methods(rows, "plus1", threshold=0.25)
    critical = next(r for r in results if r.label == "critical")
    assert critical.final.mean == pytest.approx(0.2)  # the table: every problem of the set
    assert critical.reached == 2 and critical.episodes_to_threshold.mean == 64  # the curve


def test_gap_to_the_oracle_by_hand():
    rows = _evaluation_rows(
        {"uniform": [0.3, 0.4, 0.35], "critical_auto": [0.8, 0.8, 0.9], "oracle_critical": [0.9, 0.8, 0.85]}
    )
    text = oracle_gap_markdown(rows, "plus1")
    # critical_auto - oracle by seed: -0.10, 0, +0.05: mean -1.7, sd 7.64, t(2) 4.303 -> +-19.0 points;
    # its mean 83.3 lies in the oracle's 85.0 +- 12.4
    assert "| critical_auto | -1.7 [-20.6, +17.3] | yes |" in text
    assert "| uniform | -50.0 [-74.8, -25.2] | no |" in text
    assert "| oracle_critical |" not in text
    assert oracle_gap_markdown(_evaluation_rows({"uniform": [0.3], "critical": [0.5]}), "plus1") == ""


def test_bad_settings_fail_before_any_run(micro_reference_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm"):
        _settings(micro_reference_dir, algos=("trpo",))
    with pytest.raises(ValueError, match="unknown method"):
        _settings(micro_reference_dir, methods=("critikal",)).jobs(tmp_path)
    with pytest.raises(ValueError, match="seeds repeat"):
        _settings(micro_reference_dir, seeds=(1, 1))
    assert not (tmp_path / "runs").exists()


def test_sb3_algorithms_sit_in_the_same_table_on_the_same_episode_budget(micro_reference_dir, tmp_path):
    algos = ("ppo", "sb3-ppo", "sb3-a2c")
    settings = _settings(micro_reference_dir, methods=("uniform",), seeds=(0,), algos=algos)
    summary = compare(settings, tmp_path, workers=1, progress=False)
    text = summary.read_text()
    assert all(f"| {algo}:uniform | 1 |" in text for algo in algos)
    rows = _read(tmp_path / "evaluations.csv")
    for algo in ("sb3-ppo", "sb3-a2c"):
        episodes = [int(r["episodes"]) for r in rows if r["algo"] == algo and r["split"] == "plus1"]
        # Evaluated before training, after the update passing 4 episodes (when 4..7 were done by
        # then) and at the end of the first rollout that passes the budget of 8.
        assert episodes[0] == 0 and episodes[-1] >= 8 and episodes == sorted(set(episodes)), algo
        assert len(episodes) == 3 or episodes[1] >= 8, algo
    runs = {r["algo"]: r for r in _read(tmp_path / "runs.csv")}
    assert float(runs["sb3-a2c"]["seconds_per_episode"]) > 0


def test_sb3_runs_take_sb3_settings_and_the_users_set_still_wins(tmp_path):
    jobs = CompareSettings(methods=("critical",), seeds=(0,), algos=("ppo", "sb3-ppo")).jobs(tmp_path)
    local, sb3 = (job.config for job in jobs)
    assert (sb3.lr, sb3.episodes_per_update, sb3.eval_every) == (1e-5, 8, 2)
    assert (local.lr, local.episodes_per_update) == (PRESETS["cpu"].lr, PRESETS["cpu"].episodes_per_update)
    assert sb3.kl_weighting == local.kl_weighting == "critical"
    overridden = CompareSettings(seeds=(0,), algos=("sb3-ppo",), overrides=(("lr", 3e-6),)).jobs(tmp_path)
    assert overridden[0].config.lr == 3e-6


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_ray_backend_without_ray_says_how_to_install(micro_reference_dir, tmp_path):
    with pytest.raises(MissingExtra, match=r"pip install 'arith-gym\[ray\]'"):
        run_ray(_settings(micro_reference_dir).jobs(tmp_path))


def test_ray_backend_error_when_import_fails(micro_reference_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtra, match="pip install"):
        run_ray(_settings(micro_reference_dir).jobs(tmp_path), progress=False)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_ray_backend_runs_on_a_local_ray(micro_reference_dir, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        settings = _settings(micro_reference_dir, methods=("uniform",), seeds=(3,))
        summary = compare(settings, tmp_path, backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert "| uniform | 1 |" in summary.read_text()
    assert {r["seed"] for r in _read(tmp_path / "evaluations.csv")} == {"3"}


def test_compare_on_two_references_writes_per_reference_tables(micro_reference_dir, tmp_path):
    from agents.lm.model import TaskInfo, build_model, save_reference

    second = save_reference(
        build_model("micro", seed=1).eval(), tmp_path / "micro-n2", TaskInfo(2, 1.0, "micro")
    )
    settings = _settings(
        micro_reference_dir,
        methods=("uniform",),
        seeds=(0,),
        references=(str(micro_reference_dir), str(second)),
    )
    command = "arith-rl compare --refs"
    summary = compare(settings, tmp_path / "out", workers=2, progress=False, command=command)
    names = [Path(micro_reference_dir).name, "micro-n2"]
    for name in names:
        for file in ("summary.md", "evaluations.csv", "eval_set.json", "accuracy.png"):
            assert (tmp_path / "out" / name / file).stat().st_size > 0, (name, file)
    # plus1 is relative to each reference's N: 2-digit problems for N = 1, 3-digit for N = 2.
    longest = {
        name: max(
            max(len(str(a)), len(str(b)))
            for a, b in EvalSet.load(tmp_path / "out" / name / "eval_set.json").head("plus1")
        )
        for name in names
    }
    assert longest == {names[0]: 2, "micro-n2": 3}
    text = summary.read_text()
    assert all(f"# Reference `{name}`" in text for name in names)
    assert text.count("Command: `arith-rl compare --refs`") == 1  # once, not again per reference
    assert (tmp_path / "out" / "by_reference.png").stat().st_size > 0

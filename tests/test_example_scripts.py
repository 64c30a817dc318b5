"""Example scripts that are not notebooks run end to end on a micro model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_certainty_criteria_prints_one_row_per_temperature_criterion_and_threshold(micro_reference_dir):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "certainty_criteria.py"), "--ref", str(micro_reference_dir)]
        + ["--problems", "3", "--temperatures", "1,4"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(rows) == 2 * (1 + 4 + 4 + 3)  # a mean-J row and 11 thresholds per temperature
    scores = [row.split("|")[5:9] for row in rows if "mean J" not in row]
    assert all(0.0 <= float(value) <= 1.0 for score in scores for value in score if value.strip() != "nan")


def test_reference_at_critical_prints_a_row_per_kind_and_case(micro_reference_dir):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "reference_at_critical.py"), "--ref", str(micro_reference_dir)]
        + ["--problems", "20"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith(("| comma", "| digit"))]
    # micro model: N=1, so plus1 has a 2-digit operand and the other has 1 or 2 digits
    assert rows and {row[0] for row in rows} == {"| comma", "| digit"}
    assert {row[2] for row in rows} <= {"1", "2"} and sum(int(row[3]) for row in rows) >= 40
    assert all(0.0 <= float(value) <= 1.0 for row in rows for value in row[4:7])


def test_robust_and_rank_criteria_flag_the_low_outliers():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from certainty_criteria import lowest_fraction, robust_low
    finally:
        sys.path.remove(str(EXAMPLES))
    j = np.array([0.9, 0.91, 0.89, 0.9, 0.2, 0.92, 0.9, 0.88, 0.9, 0.5])
    assert robust_low(j, 3.0).tolist() == [False] * 4 + [True] + [False] * 4 + [True]
    assert np.flatnonzero(lowest_fraction(j, 0.1)).tolist() == [4]


def test_kv_layout_bench_times_the_three_layouts():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "kv_layout_bench.py"), "--length", "40", "--capacity", "64"]
        + ["--layers", "1", "--repeats", "2", "--batch", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split(":") for line in done.stdout.splitlines() if "ms per layer-step" in line]
    assert [row[0].strip() for row in rows] == ["contiguous", "gapped", "two-part"]
    assert all(float(row[1].split()[0]) > 0 for row in rows) and "gapped / two-part:" in done.stdout


def test_vector_env_floor_prints_the_budget_and_each_cost():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "vector_env_floor.py"), "--num-envs", "8", "--problems", "50"]
        + ["--steps", "2000"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("single env:") and "us per env-step" in lines[0]
    assert lines[1].startswith("a problem: draw") and float(lines[1].split(": ")[-1].split()[0]) > 0
    assert any("the observation copy" in line for line in lines)
    assert lines[-2].startswith("rules + observation copy")
    assert lines[-1].startswith("vector / single env:") and "with no string info (what-if)" in lines[-1]


def test_task_kl_weights_prints_a_row_per_reference_and_beta(micro_reference_dir):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "task_kl_weights.py"), "--refs", str(micro_reference_dir)]
        + ["--problems", "4", "--betas", "1,150"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| micro-ref")]
    assert [row[4] for row in rows] == ["1", "150"]
    at_one, at_150 = (float(row[5]) for row in rows)
    assert 0.0 <= at_150 <= at_one <= 1.0  # J <= 1: a larger β can only lower the weight


def test_criticality_examples_report_a_run_correlate_it_with_rl_gains_and_check_the_planted_model(
    micro_reference_dir, tmp_path
):
    from conftest import quick_criticality

    from agents.cli import main

    crit = tmp_path / "crit"
    assert main(quick_criticality(micro_reference_dir, crit)) == 0
    report = subprocess.run(
        [sys.executable, str(EXAMPLES / "criticality_report.py"), str(crit), "--metric", "recall_at_5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| `critical_auto` |" in report and "| plus1 success |" in report
    # A comparison's evaluations: uniform 20 %, critical 50 % at the last update (earlier ones ignored).
    compare = tmp_path / "compare"
    compare.mkdir()
    rows = ["run,algo,method,seed,eval_index,update,episodes,split,mode,accuracy,problems"]
    for method, final in (("uniform", 0.2), ("critical", 0.5), ("oracle_critical", 0.7)):
        rows += [
            f"{method}-s0,ppo,{method},0,0,0,0,plus1,sampled,0.1,10",
            f"{method}-s0,ppo,{method},0,1,8,512,plus1,sampled,{final},10",
        ]
    (compare / "evaluations.csv").write_text("\n".join(rows) + "\n")
    versus = subprocess.run(
        [sys.executable, str(EXAMPLES / "criticality_vs_rl.py"), "--pair", str(compare), str(crit)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| crit | critical | +30.0 |" in versus and "| crit | oracle_critical | +50.0 |" in versus
    assert "decision_lift: rho" in versus
    planted = subprocess.run(
        [sys.executable, str(EXAMPLES / "criticality_planted.py"), "--episodes", "6"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert planted.count("| 100.0% |") == 3  # the critical labels are right for every p

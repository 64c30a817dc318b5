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

"""Training-curve figures."""

import csv
from pathlib import Path

import pytest

from agents.experiments.plots import plot_runs, problems_note
from agents.experiments.results import curve_value


def _fake_run(path: Path, accuracies: list[float]) -> Path:
    path.mkdir()
    with (path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["update", "episodes", "plus1_sampled", "comfort_sampled"])
        writer.writeheader()
        for update, accuracy in enumerate(accuracies):
            row = {"update": update, "episodes": 64 * update, "plus1_sampled": accuracy, "comfort_sampled": 1}
            writer.writerow(row)
    return path


def test_plot_runs_writes_a_png(tmp_path: Path) -> None:
    runs = [_fake_run(tmp_path / "uniform", [0.1, 0.2]), _fake_run(tmp_path / "critical", [0.1, 0.4])]
    out = plot_runs(runs, tmp_path / "fig" / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_runs_needs_one_label_per_run(tmp_path: Path) -> None:
    runs = [_fake_run(tmp_path / "a", [0.1])]
    with pytest.raises(ValueError):
        plot_runs(runs, tmp_path / "x.png", labels=["a", "b"])


def test_problems_note_says_how_many_problems_each_point_scores() -> None:
    # the curves draw every point on the set's first problems (the final evaluation's head)
    rows = [{"split": "plus1", "problems": n, "curve_problems": 100} for n in (100, 100, 400)]
    assert problems_note(rows, "plus1") == " (100 problems per point)"
    # rows from before the head figures: the final point scores all 400, which the title must say
    # (a step into the last point may be the problems changing, not the policy)
    old = [{"split": "plus1", "problems": n} for n in (100, 100, 400)] + [
        {"split": "comfort", "problems": 200}
    ]
    assert problems_note(old, "plus1") == "\n(100 problems per point, the final 400)"
    assert problems_note(old, "comfort") == " (200 problems per point)"
    assert problems_note([{"split": "plus1", "problems": 0}], "plus1") == ""  # runs from before the count


def test_a_curve_draws_the_final_evaluation_on_the_intermediate_problems() -> None:
    final = {"plus1_sampled": 0.40, "plus1_sampled_head": 0.55}  # all 400 problems; the first 100
    assert curve_value(final, "plus1_sampled") == 0.55
    assert curve_value({"plus1_sampled": 0.3}, "plus1_sampled") == 0.3  # an intermediate evaluation

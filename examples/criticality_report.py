"""Tables across ``arith-rl criticality`` outputs: one row per selector, one column per run.

    python examples/criticality_report.py runs/crit-n2 runs/crit-n3 runs/crit-n4 --metric auprc

Each cell is the metric on the run's pooled seeds with its 95 % bootstrap interval over
problems (``--no-ci`` for the point only); the first rows give each run's ground truth.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def load(run: Path) -> tuple[dict, dict[str, dict[str, tuple[float, float, float]]]]:
    settings = json.loads((run / "settings.json").read_text())
    metrics: dict[str, dict[str, tuple[float, float, float]]] = {}
    with open(run / "metrics.csv") as handle:
        for row in csv.DictReader(handle):
            metrics.setdefault(row["selector"], {})[row["metric"]] = (
                float(row["value"]),
                float(row["low"]),
                float(row["high"]),
            )
    return settings, metrics


def cell(value: tuple[float, float, float], percent: bool, ci: bool) -> str:
    point, low, high = (100 * v if percent else v for v in value)
    digits = 1 if percent else 3
    if point != point:  # NaN
        return "–"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]" if ci else f"{point:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default="auprc")
    parser.add_argument("--selectors", help="comma-separated (default: every one of the first run)")
    parser.add_argument("--no-ci", action="store_true")
    args = parser.parse_args()
    loaded = [load(run) for run in args.runs]
    percent = args.metric not in ("auprc", "spearman")
    names = args.selectors.split(",") if args.selectors else list(loaded[0][1])
    # A report folder (--report) is named after the run it re-read.
    names_of_runs = [
        run.name if (run / "seed0").is_dir() else f"{run.parent.name} ({run.name})" for run in args.runs
    ]
    print("| | " + " | ".join(names_of_runs) + " |")
    print("|---|" + "---|" * len(args.runs))
    truth = [settings["ground_truth"] for settings, _ in loaded]
    print("| plus1 success | " + " | ".join(f"{t['success']:.1%}" for t in truth) + " |")
    print(
        "| critical tokens (share) | "
        + " | ".join(f"{t['critical_tokens']:.0f} ({t['critical_share']:.2%})" for t in truth)
        + " |"
    )
    print(
        "| ... after a deviation | " + " | ".join(f"{t['after_deviation_share']:.0%}" for t in truth) + " |"
    )
    print("| ΣH at sure tokens | " + " | ".join(f"{t['sure_headroom_share']:.0%}" for t in truth) + " |")
    for name in names:
        cells = [cell(m[name][args.metric], percent, not args.no_ci) if name in m else "–" for _, m in loaded]
        print(f"| `{name}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""A comparison's results: every evaluation as rows, per-method estimates with intervals, the summary.

:func:`collect` reads every run's ``metrics.csv`` into ``evaluations.csv``, ``critical.csv`` and
``runs.csv``; :func:`summarize_methods` turns the evaluations into per-method final accuracies
with 95% t intervals across seeds and paired (same seed) differences to ``uniform``;
:func:`summary_markdown` and :func:`timing_markdown` write them up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.evaluation.accuracy import HEAD
from agents.evaluation.stats import Estimate, mean_ci, paired_difference
from agents.experiments.jobs import Job
from agents.rundir import read_metrics, write_rows

CURVE = "curve_accuracy"
"""The ``evaluations.csv`` column a curve draws (:func:`curve_value` of each evaluation)."""


def collect(jobs: Sequence[Job], out: str | Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Every evaluation of every run (``evaluations.csv``, ``critical.csv``) and each run's
    training wall time (``runs.csv``: rollouts and updates, evaluations excluded)."""
    evaluations, critical, runs = [], [], []
    for job in jobs:
        rows = read_metrics(job.run_dir)
        seconds = sum(row.get("update_seconds", 0.0) for row in rows)
        episodes = rows[-1]["episodes"]
        runs.append(
            dict(
                run=job.name,
                algo=job.algo,
                method=job.method,
                seed=job.seed,
                episodes=int(episodes),
                train_seconds=seconds,
                seconds_per_episode=seconds / max(episodes, 1),
            )
        )
        evals = [row for row in rows if has_eval(row)]
        for index, row in enumerate(evals):
            base = {
                "run": job.name,
                "algo": job.algo,
                "method": job.method,
                "seed": job.seed,
                "eval_index": index,
                "update": int(row["update"]),
                "episodes": int(row["episodes"]),
            }
            for key, value in row.items():
                if key.endswith(("_sampled", "_greedy")):
                    split, mode = key.rsplit("_", 1)
                    problems = int(row.get(f"{split}_problems", 0))  # 0: a run from before the count
                    evaluations.append(
                        {
                            **base,
                            "split": split,
                            "mode": mode,
                            "accuracy": value,
                            "problems": problems,
                            # the curves' figure: the final evaluation on the intermediate problems
                            CURVE: curve_value(row, key),
                            "curve_problems": int(row.get(f"{split}_problems{HEAD}", problems)),
                        }
                    )
                elif key.startswith("p_critical/"):
                    critical.append({**base, "label": key.split("/", 1)[1], "probability": value})
    out = Path(out)
    write_rows(out / "evaluations.csv", evaluations)
    write_rows(out / "critical.csv", critical)
    write_rows(out / "runs.csv", runs)
    return evaluations, critical, runs


def curve_value(row: dict[str, float], key: str) -> float:
    """A metrics row's ``key`` (e.g. ``plus1_sampled``) as a curve draws it: a final evaluation's
    figure on the intermediate evaluations' problems where it has one (``key`` + :data:`HEAD`)."""
    return row.get(key + HEAD, row[key])


def group_label(algo: str, method: str, algos: Sequence[str]) -> str:
    """A method's name in tables and legends (prefixed by its algorithm when several are compared)."""
    return method if len(set(algos)) == 1 else f"{algo}:{method}"


def curves(
    evaluations: list[dict], split: str, mode: str = "sampled", field: str = "accuracy"
) -> dict[str, dict[int, list[tuple]]]:
    """label -> eval index -> [(seed, episodes, accuracy)] for one split and mode; ``field``
    ``curve_accuracy``: each evaluation on the intermediate problems (rows without it: ``accuracy``)."""
    algos = sorted({row["algo"] for row in evaluations})
    grouped: dict[str, dict[int, list[tuple]]] = defaultdict(lambda: defaultdict(list))
    for row in evaluations:
        if row["split"] == split and row["mode"] == mode:
            label = group_label(row["algo"], row["method"], algos)
            accuracy = float(row.get(field, row["accuracy"]))  # rows read back from a CSV hold strings
            grouped[label][row["eval_index"]].append((row["seed"], row["episodes"], accuracy))
    return grouped


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class MethodResult:
    label: str
    final: Estimate
    final_comfort: Estimate
    difference: Estimate | None
    """plus{k} final accuracy minus uniform's, paired by seed (None for uniform itself or without it)."""
    difference_comfort: Estimate | None
    episodes_to_threshold: Estimate | None
    reached: int
    seeds: int


def _final_by_seed(grouped: dict[int, list[tuple]]) -> dict[int, float]:
    last = max(grouped)
    return {seed: accuracy for seed, _, accuracy in grouped[last]}


def summarize_methods(evaluations: list[dict], split: str, threshold: float | None = None):
    """Per-method results, and the threshold used (None: initial mean accuracy + 0.15)."""
    harder, comfort = curves(evaluations, split), curves(evaluations, "comfort")
    # when a run first reaches the threshold is read off its curve (every point on one problem set)
    along_curve = curves(evaluations, split, field=CURVE)
    if threshold is None:
        initial = [acc for groups in harder.values() for _, _, acc in groups.get(0, [])]
        threshold = float(np.mean(initial)) + 0.15
    results = []
    for label, grouped in harder.items():
        final, final_comfort = _final_by_seed(grouped), _final_by_seed(comfort[label])
        seeds = sorted(final)
        baseline = _baseline_label(label, "uniform")
        difference = difference_comfort = None
        if baseline != label and baseline in harder:
            difference = _paired(final, _final_by_seed(harder[baseline]))
            difference_comfort = _paired(final_comfort, _final_by_seed(comfort[baseline]))
        reached_at = _episodes_to(along_curve[label], threshold)
        results.append(
            MethodResult(
                label,
                mean_ci([final[s] for s in seeds]),
                mean_ci([final_comfort[s] for s in seeds]),
                difference,
                difference_comfort,
                mean_ci(list(reached_at.values())) if reached_at else None,
                len(reached_at),
                len(seeds),
            )
        )
    return results, threshold


def _baseline_label(label: str, baseline: str) -> str:
    """The label of method ``baseline`` run with ``label``'s algorithm."""
    return f"{label.split(':')[0]}:{baseline}" if ":" in label else baseline


def _paired(final: dict[int, float], base: dict[int, float]) -> Estimate | None:
    """``final - base`` paired by the seeds both have (None if they share none)."""
    shared = [seed for seed in sorted(final) if seed in base]
    return paired_difference([final[s] for s in shared], [base[s] for s in shared]) if shared else None


def _episodes_to(grouped: dict[int, list[tuple]], threshold: float) -> dict[int, float]:
    """seed -> episodes at its first evaluation at or above ``threshold`` (seeds never there: absent)."""
    reached: dict[int, float] = {}
    for index in sorted(grouped):
        for seed, episodes, accuracy in grouped[index]:
            if seed not in reached and accuracy >= threshold:
                reached[seed] = episodes
    return reached


def summary_markdown(results: list[MethodResult], split: str, threshold: float, command: str = "") -> str:
    """The Markdown table of ``summary.md``, with a one-line verdict on critical vs uniform."""
    lines = [
        f"# Comparison on `{split}` (sampled at the policy temperature)",
        "",
        *([f"Command: `{command}`", ""] if command else []),
        f"Final accuracy: the last evaluation of each run; mean over seeds with a 95% t interval. "
        f"Δ: paired by seed against `uniform`. Threshold: {100 * threshold:.1f}% on `{split}`.",
        "",
        f"| method | seeds | {split} final % | comfort final % | Δ {split} vs uniform (points) "
        f"| Δ comfort (points) | episodes to {100 * threshold:.0f}% (runs that got there) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delta = r.difference.percent(signed=True) if r.difference else "—"
        delta_comfort = r.difference_comfort.percent(signed=True) if r.difference_comfort else "—"
        if r.episodes_to_threshold is None:
            episodes = f"not reached (0/{r.seeds})"
        else:
            e = r.episodes_to_threshold
            spread = f" [{e.low:.0f}, {e.high:.0f}]" if r.reached > 1 else ""
            episodes = f"{e.mean:.0f}{spread} ({r.reached}/{r.seeds})"
        lines.append(
            f"| {r.label} | {r.seeds} | {r.final.percent()} | {r.final_comfort.percent()} | {delta} "
            f"| {delta_comfort} | {episodes} |"
        )
    lines += ["", *(verdict(r) for r in results if r.difference is not None)]
    return "\n".join(lines) + "\n"


ORACLE = "oracle_critical"
"""The weighting that knows the template (no KL at the env's critical tokens): the reference
point of a template-free weighting (not a ceiling: certainty weightings beat it on N = 4, docs/beyond.md)."""


def oracle_gap_markdown(evaluations: list[dict], split: str, oracle: str = ORACLE) -> str:
    """How close each method gets to ``oracle`` (per algorithm): its final ``split`` accuracy minus
    the oracle's, paired by seed, with its t interval, and whether its mean over seeds lies inside
    the oracle's 95% interval. Empty when the oracle did not run."""
    harder = curves(evaluations, split)
    rows = []
    for label, grouped in harder.items():
        oracle_label = _baseline_label(label, oracle)
        if label == oracle_label or oracle_label not in harder:
            continue
        final, base = _final_by_seed(grouped), _final_by_seed(harder[oracle_label])
        gap = _paired(final, base)
        if gap is None:
            continue
        band = mean_ci(list(base.values()))
        inside = band.n >= 2 and band.low <= mean_ci(list(final.values())).mean <= band.high
        rows.append(f"| {label} | {gap.percent(signed=True)} | {'yes' if inside else 'no'} |")
    if not rows:
        return ""
    return (
        "\n".join(
            [
                "",
                f"## Gap to `{oracle}` (the weighting that knows the template)",
                "",
                f"| method | Δ {split} vs {oracle} (points, paired by seed) "
                "| mean inside the oracle's 95% interval |",
                "|---|---|---|",
                *rows,
            ]
        )
        + "\n"
    )


def timing_markdown(runs: list[dict]) -> str:
    """Training wall time per episode (evaluations excluded), per method, and its ratio to the fastest."""
    algos = sorted({run["algo"] for run in runs})
    per_label: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        per_label[group_label(run["algo"], run["method"], algos)].append(run["seconds_per_episode"])
    means = {label: float(np.mean(values)) for label, values in per_label.items()}
    fastest = min(means.values())
    lines = ["", "| method | training s / episode | ratio to the fastest |", "|---|---|---|"]
    lines += [f"| {label} | {s:.3f} | {s / fastest:.1f}x |" for label, s in sorted(means.items())]
    return "\n".join(lines) + "\n"


def verdict(result: MethodResult) -> str:
    """One sentence: did ``result`` beat uniform, with its paired CI?"""
    d = result.difference
    if d is None or np.isnan(d.low):
        return f"- `{result.label}` vs `uniform`: too few seeds for an interval."
    if d.excludes_zero:
        word = "beat" if d.mean > 0 else "did worse than"
        return (
            f"- `{result.label}` {word} `uniform`: {100 * d.mean:+.1f} points,"
            f" 95% CI [{100 * d.low:+.1f}, {100 * d.high:+.1f}] (n={d.n} seeds, excludes 0)."
        )
    return (
        f"- `{result.label}` vs `uniform`: {100 * d.mean:+.1f} points, 95% CI [{100 * d.low:+.1f},"
        f" {100 * d.high:+.1f}] (n={d.n} seeds): the interval includes 0, no significant difference."
    )


def has_eval(row: dict[str, float]) -> bool:
    return any(key.endswith("_sampled") for key in row)

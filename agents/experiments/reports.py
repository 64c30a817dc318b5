"""The held-out protocol's reports of a comparison: the shared evaluation set, each run's
accuracy with its binomial interval, which noise dominates, where the errors are, pass@k."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.evaluation.accuracy import wilson_interval
from agents.evaluation.heldout import EVAL_SET_FILE
from agents.experiments.jobs import Job
from agents.experiments.results import group_label, has_eval
from agents.rundir import read_metrics, write_rows

# --------------------------------------------------------------------------- the evaluation set


def shared_eval_set(jobs: Sequence[Job], out: str | Path) -> Path | None:
    """Check that every run evaluated on the same held-out set and save it as ``OUT/eval_set.json``.

    Returns the file (None if no run recorded its set: runs of an older version).

    Raises:
        ValueError: naming a run whose evaluation set differs from the first run's.
    """
    first: tuple[str, str] | None = None
    for job in jobs:
        path = Path(job.run_dir) / EVAL_SET_FILE
        if not path.is_file():
            continue
        text = path.read_text()
        if first is None:
            first = (job.name, text)
        elif text != first[1]:
            raise ValueError(f"run {job.name} was evaluated on other problems than run {first[0]} ({path})")
    if first is None:
        return None
    target = Path(out) / EVAL_SET_FILE
    target.write_text(first[1])
    return target


# --------------------------------------------------------------------------- per-run intervals


def final_runs(evaluations: list[dict], split: str, mode: str = "sampled") -> list[dict]:
    """Each run's final accuracy on ``split`` and ``comfort`` with its Wilson 95% interval."""
    last: dict[tuple[str, str], dict] = {}
    for row in evaluations:
        if row["mode"] == mode:
            key = (row["run"], row["split"])
            if key not in last or row["eval_index"] > last[key]["eval_index"]:
                last[key] = row
    runs = []
    for (run, name), row in sorted(last.items()):
        if name != split:
            continue
        entry = {"run": run, "algo": row["algo"], "method": row["method"], "seed": row["seed"]}
        for which, found in ((split, row), ("comfort", last.get((run, "comfort")))):
            if found is None:
                continue
            n = int(found.get("problems") or 0)
            low, high = wilson_interval(round(found["accuracy"] * n), n) if n else (float("nan"),) * 2
            entry.update({f"{which}": found["accuracy"], f"{which}_low": low, f"{which}_high": high})
            entry[f"{which}_problems"] = n
        runs.append(entry)
    return runs


def per_run_markdown(runs: list[dict], split: str) -> str:
    """A table of every run's final accuracy with its binomial (Wilson) interval."""
    lines = [
        "",
        "## Per run (final evaluation, 95% Wilson interval over its problems)",
        "",
        f"| run | {split} % | comfort % |",
        "|---|---|---|",
    ]
    for run in runs:
        cells = []
        for name in (split, "comfort"):
            if name not in run:
                cells.append("—")
                continue
            n = run[f"{name}_problems"]
            interval = f" [{100 * run[f'{name}_low']:.1f}, {100 * run[f'{name}_high']:.1f}]" if n else ""
            cells.append(f"{100 * run[name]:.1f}{interval} (n={n})")
        lines.append(f"| {run['run']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def noise_verdict(runs: list[dict], split: str) -> str:
    """Which noise dominates each method's final accuracy: seed to seed, or the evaluation's."""
    lines = ["", "## Which noise dominates", ""]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["algo"], run["method"])].append(run)
    algos = sorted({algo for algo, _ in groups})
    for (algo, method), members in sorted(groups.items()):
        accuracies = np.array([run[split] for run in members])
        counts = [run[f"{split}_problems"] for run in members]
        if len(members) < 2 or not all(counts):
            continue
        between = float(accuracies.std(ddof=1))
        binomial = float(np.sqrt(np.mean([p * (1 - p) / n for p, n in zip(accuracies, counts, strict=True)])))
        if between > 2 * binomial:
            reading = "seed-to-seed variation dominates: more seeds narrow the interval, more problems hardly"
        elif binomial > 2 * between:
            reading = "the evaluation's binomial noise dominates: more problems would narrow the interval"
        else:
            reading = "both are of a size: more seeds and more problems both help"
        lines.append(
            f"- `{group_label(algo, method, algos)}`: between seeds SD {100 * between:.1f} points, one run's "
            f"binomial SD {100 * binomial:.1f} points (n={min(counts)}): {reading}."
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- where the errors are


def collect_errors(jobs: Sequence[Job], out: str | Path) -> list[dict]:
    """Every evaluation's error kinds (``errors.csv``): of the sampled failures on the harder
    split, the share whose first wrong token is of each kind (:mod:`arith_gym.anatomy`)."""
    rows = []
    for job in jobs:
        evals = [row for row in read_metrics(job.run_dir) if has_eval(row)]
        for index, row in enumerate(evals):
            failures = next((v for k, v in row.items() if k.endswith("_failures")), None)
            for key, value in row.items():
                if "_errors/" in key:
                    rows.append(
                        {
                            "run": job.name,
                            "algo": job.algo,
                            "method": job.method,
                            "seed": job.seed,
                            "eval_index": index,
                            "episodes": int(row["episodes"]),
                            "kind": key.split("/", 1)[1],
                            "share": value,
                            "failures": int(failures or 0),
                        }
                    )
    write_rows(Path(out) / "errors.csv", rows)
    return rows


def errors_markdown(errors: list[dict], split: str) -> str:
    """Per method, where the sampled failures on ``split`` first go wrong: before RL (the
    reference, the first evaluation) and after (the final one), pooled over seeds."""
    if not errors:
        return ""
    algos = sorted({row["algo"] for row in errors})
    kinds = list(dict.fromkeys(row["kind"] for row in errors))
    last = defaultdict(int)
    for row in errors:
        last[row["run"]] = max(last[row["run"]], row["eval_index"])
    lines = [
        "",
        f"## Where the errors are (first wrong token of sampled `{split}` failures, pooled over seeds)",
        "",
        "| method | when | failures | " + " | ".join(f"{kind} %" for kind in kinds) + " |",
        "|---|---|---|" + "---|" * len(kinds),
    ]
    for label in dict.fromkeys(group_label(r["algo"], r["method"], algos) for r in errors):
        for when in ("before RL", "after RL"):
            chosen = [
                r
                for r in errors
                if group_label(r["algo"], r["method"], algos) == label
                and r["eval_index"] == (0 if when == "before RL" else last[r["run"]])
            ]
            failures = {r["run"]: r["failures"] for r in chosen}
            total = sum(failures.values())
            cells = []
            for kind in kinds:
                # pooled: each run's share weighted by its number of failures
                count = sum(r["share"] * r["failures"] for r in chosen if r["kind"] == kind)
                cells.append(f"{100 * count / total:.0f}" if total else "—")
            lines.append(f"| {label} | {when} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def passk_markdown(rows: list[dict]) -> str:
    """pass@1 and pass@n per model label (mean over seeds)."""
    ks = sorted({int(row["k"]) for row in rows})
    labels = list(dict.fromkeys(row["model"] for row in rows))
    lines = ["", "## pass@k (held-out problems, mean over seeds)", ""]
    lines += ["| model | " + " | ".join(f"pass@{k} %" for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
    for label in labels:
        cells = [
            100 * np.mean([row["pass_at_k"] for row in rows if row["model"] == label and int(row["k"]) == k])
            for k in ks
        ]
        lines.append(f"| {label} | " + " | ".join(f"{cell:.1f}" for cell in cells) + " |")
    return "\n".join(lines) + "\n"

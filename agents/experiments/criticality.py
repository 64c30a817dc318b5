"""The criticality benchmark: ground truth on a model's episodes, every selector scored against it.

``arith-rl criticality MODEL_DIR --out DIR`` runs :func:`run_criticality`: for each seed, the
ground truth of :mod:`agents.evaluation.criticality` (saved problem by problem under
``DIR/seed<S>/``, so an interrupted run resumes where it stopped), then every selector of
:mod:`agents.rl.selectors` scored by :mod:`agents.evaluation.selector_metrics` over the seeds'
problems pooled, with paired bootstrap intervals over problems. Writes ``metrics.csv``,
``summary.md`` and ``settings.json``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from agents.evaluation.criticality import ground_truth
from agents.evaluation.criticality_table import CriticalityConfig, CriticalityTable, concat, relabel
from agents.evaluation.selector_metrics import benchmark_metrics, ground_truth_summary
from agents.kl import certainty
from agents.lm.episodes import model_codec
from agents.lm.model import load_codec, load_reference
from agents.rl.config import PRESETS, RLConfig
from agents.rl.selectors import SelectorContext, all_selectors, weighting_methods
from agents.rl.weighting import TrainingProblems
from arith_gym.codec import CharacterCodec


@dataclass(frozen=True)
class CriticalityRun:
    """One benchmark: the model analysed, its reference, the seeds and the ground truth's settings."""

    model_dir: str
    out: str
    seeds: tuple[int, ...] = (0, 1, 2)
    config: CriticalityConfig = CriticalityConfig()
    reference_dir: str | None = None
    """The frozen reference the selectors compare with (None: the model's run's reference if it
    is an RL checkpoint (``reference.txt`` beside it), else the model itself)."""
    selectors: tuple[str, ...] | None = None
    resamples: int = 500
    report: str | None = None
    """Where ``metrics.csv``, ``summary.md`` and ``settings.json`` go (None: ``out``); e.g. the
    same ground truth re-read at another ε or threshold."""
    preset: str = "cpu"
    """The RL settings the KL-weighting selectors use (certainty temperature, β): the comparisons'."""
    device: str = "cpu"


def reference_of(model_dir: str | Path) -> Path | None:
    """The reference an RL checkpoint was trained from (its run's ``reference.txt``), if any."""
    for folder in (Path(model_dir), Path(model_dir).parent):
        if (folder / "reference.txt").is_file():
            return Path((folder / "reference.txt").read_text().strip())
    return None


def run_criticality(run: CriticalityRun, progress: bool = True) -> dict:
    """Ground truth for every seed (resumed where saved), then the selector metrics; returns the
    summary dict also written to ``settings.json`` (timings included)."""
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    model, info = load_reference(run.model_dir)
    model.to(run.device).eval()
    tokenizer = load_codec(run.model_dir, model)
    codec = CharacterCodec(info.vocab_size) if tokenizer is None else model_codec(model, tokenizer)
    reference_dir = run.reference_dir or reference_of(run.model_dir)
    reference = model
    if reference_dir is not None and Path(reference_dir).resolve() != Path(run.model_dir).resolve():
        reference = load_reference(reference_dir)[0].to(run.device).eval()
    started = time.perf_counter()
    config = run.config
    bar = tqdm(total=len(run.seeds) * config.problems, desc="criticality", disable=not progress)
    tables = []
    for seed in run.seeds:
        folder = out / f"seed{seed}"
        folder.mkdir(exist_ok=True)
        done = _saved_problems(folder, config)
        bar.update(len(done))
        count = len(done)

        def save(table: CriticalityTable, folder: Path = folder) -> None:
            nonlocal count
            table.save(folder / f"problem{count:04d}.npz")
            count += 1

        tables.append(
            ground_truth(
                model,
                codec,
                info.task,
                info.comfort_digits,
                config,
                seed,
                reference,
                done,
                save,
                lambda _: bar.update(1),
            )
        )
    bar.close()
    ground_seconds = time.perf_counter() - started
    table = concat(tables)
    problems = TrainingProblems(
        info.comfort_digits, config.split, info.task, None if tokenizer is None else codec
    )
    settings = PRESETS[run.preset].with_overrides(temperature=config.temperature)
    context = SelectorContext(reference, problems, settings)
    selections, skipped = _select(table, context, run.selectors)
    metrics = benchmark_metrics(table, selections, run.resamples, seed=0)
    summary = {
        "model_dir": str(run.model_dir),
        "reference_dir": str(reference_dir) if reference_dir else str(run.model_dir),
        "task": info.task,
        "comfort_digits": info.comfort_digits,
        "seeds": list(run.seeds),
        "config": asdict(config),
        "ground_truth": ground_truth_summary(table),
        "certainty_gap": certainty_gap(table, settings),
        "ground_truth_seconds_this_call": round(ground_seconds, 1),
        "selector_notes": context.notes,
        "not_scored": skipped,
    }
    report = Path(run.report or out)
    report.mkdir(parents=True, exist_ok=True)
    _write(report, table, metrics, summary, run.resamples)
    return summary


def certainty_gap(table: CriticalityTable, settings: RLConfig) -> dict[str, float]:
    """The reference's mean certainty J (the settings' temperature and kind) at the env's
    structural critical tokens and at the other tokens, both while the episode is on the target."""
    logits = torch.as_tensor(table.ref_logits.astype(np.float32))
    j = certainty(logits, settings.certainty_temperature, settings.certainty_kind).numpy()
    on_target = ~table.deviated
    structural = on_target & table.structural
    return {
        "structural": float(j[structural].mean()) if structural.any() else float("nan"),
        "other": float(j[on_target & ~table.structural].mean()),
        "structural_tokens": float(structural.sum()),
        "temperature": settings.certainty_temperature,
    }


LABEL_SETTINGS = ("epsilon", "threshold")
"""Settings that only label the sampled counts: a saved ground truth is re-read at new values."""


def _saved_problems(folder: Path, config: CriticalityConfig) -> list[CriticalityTable]:
    """The problems of an earlier or interrupted run with the same sampling settings (its ε and
    threshold may differ: the arms at a coarser ε all ran)."""
    path = folder / "config.json"
    if not path.is_file():
        path.write_text(json.dumps(asdict(config), sort_keys=True))
    saved = json.loads(path.read_text())
    wanted = asdict(config)
    differ = sorted(k for k in wanted if k not in LABEL_SETTINGS and saved.get(k) != wanted[k])
    if differ:
        raise ValueError(
            f"{folder} holds a ground truth made with other settings ({', '.join(differ)}); use another --out"
        )
    tables = [CriticalityTable.load(p) for p in sorted(folder.glob("problem*.npz"))[: config.problems]]
    # Re-estimated from the saved counts: at this ε and threshold, with this version's intervals.
    return [relabel(table, config.epsilon, config.threshold, config.draws) for table in tables]


def _select(table: CriticalityTable, context: SelectorContext, names) -> tuple[dict, dict[str, str]]:
    selectors = all_selectors()
    skipped = {name: why for name, why in weighting_methods().items() if why is not None}
    wanted = list(selectors) if names is None else list(names)
    unknown = [name for name in wanted if name not in selectors]
    if unknown:
        raise ValueError(f"unknown selectors {unknown}; scorable: {', '.join(selectors)}")
    selections = {}
    for name in wanted:
        scores = np.asarray(selectors[name].score(table, context), dtype=np.float64)
        selections[name] = (scores, selectors[name].picks(table, context, scores))
    return selections, skipped


def _write(out: Path, table: CriticalityTable, metrics, summary: dict, resamples: int) -> None:
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["selector", "metric", "value", "low", "high"])
        for name, by_metric in metrics.items():
            for metric, estimate in by_metric.items():
                writer.writerow([name, metric, estimate.value, estimate.low, estimate.high])
    (out / "settings.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(format_summary(summary, metrics, resamples))


def format_summary(summary: dict, metrics, resamples: int) -> str:
    """The benchmark as Markdown: the ground truth in one paragraph, then one row per selector."""
    truth, gap = summary["ground_truth"], summary["certainty_gap"]
    lines = [
        f"**{summary['model_dir']}** ({summary['task']}, N = {summary['comfort_digits']}), seeds"
        f" {summary['seeds']}: {truth['episodes']:.0f} episodes of {truth['problems']:.0f} problems,"
        f" {truth['tokens']:.0f} tokens, success {truth['success']:.1%};"
        f" critical (H >= {summary['config']['threshold']}): {truth['critical_tokens']:.0f} tokens"
        f" ({truth['critical_share']:.2%} of the weighted tokens), {truth['after_deviation_share']:.0%}"
        f" of them after the episode left the target, {truth['sure_headroom_share']:.0%} of their"
        f" headroom at sure tokens (top π >= 0.9).",
        f"Certainty gap: the reference's mean J (T = {gap['temperature']:g}) is {gap['structural']:.3f}"
        f" at the {gap['structural_tokens']:.0f} structural critical tokens on the target,"
        f" {gap['other']:.3f} at the other tokens on it.",
        "",
        f"Intervals: 95 % bootstrap over problems ({resamples} resamples, paired across selectors).",
        "",
        "| selector | budget | precision | recall | ΣH share | R@1% | R@5% | AUPRC [95 % CI] |"
        " Spearman | recall forks / sure | picks at lost states |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        shares = " | ".join(
            _pct(m[key].value)
            for key in ("budget", "precision", "recall", "headroom_share", "recall_at_1", "recall_at_5")
        )
        lines.append(
            f"| {name} | {shares} | {m['auprc'].value:.3f} [{m['auprc'].low:.3f}, {m['auprc'].high:.3f}]"
            f" | {m['spearman'].value:.2f} | {_pct(m['recall_fork'].value)} / {_pct(m['recall_sure'].value)}"
            f" | {_pct(m['lost_picks'].value)} |"
        )
    if summary["selector_notes"]:
        lines += ["", "Calibrated: " + ", ".join(f"{k} {v}" for k, v in summary["selector_notes"].items())]
    if summary["not_scored"]:
        lines += ["", "Not scored: " + ", ".join(f"{k} ({v})" for k, v in summary["not_scored"].items())]
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return "–" if np.isnan(value) else f"{100 * value:.1f}"

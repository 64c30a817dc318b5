"""``arith-rl`` commands on RL runs: train, eval, compare, plot."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agents.cli.config_options import add_config_options, config_overrides
from agents.cli.registry import add_device, comma_list, command, number_list, parse_settings, positive_int

if TYPE_CHECKING:
    from agents.evaluation.heldout import EvalSet
    from agents.lm.model import TaskInfo

# --------------------------------------------------------------------------- train and eval


PER_RUN = ("algo", "seed")
"""Settings ``compare`` sets per run (``--algos``, ``--seeds``): no option of their own there."""


def _setting_choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of the settings that take fixed or registered names (after plug-ins)."""
    from agents.kl import KL_ESTIMATORS
    from agents.rl.advantages import ADVANTAGES
    from agents.rl.config import CHOICES
    from agents.rl.losses import LOSS_AGGREGATIONS, POLICY_LOSSES
    from agents.rl.weighting import KL_WEIGHTINGS

    registered = {"kl_weighting": KL_WEIGHTINGS, "kl_estimator": KL_ESTIMATORS, "advantage": ADVANTAGES}
    registered.update(policy_loss=POLICY_LOSSES, loss_agg=LOSS_AGGREGATIONS)
    return {**CHOICES, **{name: registry.names() for name, registry in registered.items()}}


def _rl_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...]) -> None:
    """What ``train`` and ``compare`` share: the reference, the preset, ``--set`` and one option per
    RLConfig setting (:mod:`agents.cli.config_options`) but ``exclude``."""
    from agents.rl.config import PRESETS, RLConfig

    parser.add_argument("--ref", default=None, help="reference model directory (default: the shipped one)")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="starting RL settings")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any RLConfig setting (JSON value)"
    )
    add_config_options(parser, RLConfig, exclude=exclude, choices=_setting_choices(), defaults=PRESETS["cpu"])
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="a Python file that registers algorithms, estimators, losses or KL weightings (repeatable)",
    )


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.backends import algorithm_names
    from agents.rl.methods import METHODS

    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--config", help="JSON file of settings (may name a 'preset')")
    parser.add_argument("--method", help=f"an exploration method: {', '.join(METHODS)} (critical*@beta=B)")
    parser.add_argument(
        "--algo",
        choices=algorithm_names(),
        help="RL algorithm, with its settings (default: the preset's); sb3-*, trl-*: SB3, TRL",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    _rl_arguments(parser, exclude=("algo",))
    add_device(parser)


def rl_config_from_args(args: argparse.Namespace):
    """The preset (or the config file), then the algorithm, then the method, then ``--set`` pairs,
    then the named flags."""
    from agents.backends import backend_for
    from agents.rl.algorithms import algorithm_and_method
    from agents.rl.config import PRESETS, RLConfig

    config = RLConfig.from_file(args.config) if args.config else PRESETS[args.preset]
    overrides = {**parse_settings(args.set), **config_overrides(args, RLConfig, exclude=("algo",))}
    algo = args.algo or config.algo
    backend = backend_for(algo)
    if args.algo is None:  # the preset's (or the file's) algorithm, as it stands
        config = algorithm_and_method(config, None, args.method)
    else:
        config = backend.job_config(config, algo, args.method)
    config = config.with_overrides(**overrides)
    backend.check(config, algo)
    return config


@command("train", "RL fine-tuning of a reference model (PPO, GRPO, ...; weighted KL)", _train_arguments)
def _train(args: argparse.Namespace) -> int:
    from agents.backends.runs import train_run
    from agents.lm.model import DEFAULT_REFERENCE
    from agents.rl.bookkeeping import REFERENCE_FILE
    from agents.rundir import read_metrics

    config = rl_config_from_args(args)
    reference = args.ref or DEFAULT_REFERENCE
    saved = Path(args.out) / REFERENCE_FILE
    if args.resume and args.ref is None and saved.exists():
        reference = saved.read_text().strip()
    algo = args.algo or config.algo
    run = train_run(
        config, args.out, reference, algo, method=args.method, device=args.device, resume=args.resume
    )
    evaluations = [row for row in read_metrics(run) if f"{config.split}_sampled" in row]
    _print_eval(evaluations[-1], config.split)
    return 0


def _print_eval(metrics: dict[str, float], split: str) -> None:
    for name in dict.fromkeys(("comfort", split)):
        greedy = metrics.get(f"{name}_greedy")
        line = f"{name:>8}: sampled {100 * metrics[f'{name}_sampled']:5.1f}%"
        print(line + (f"   greedy {100 * greedy:5.1f}%" if greedy is not None else ""))


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory (arith-rl train --out) or model directory")
    parser.add_argument(
        "--episodes", type=positive_int, help="problems per split (default: 100, or all of --eval-set)"
    )
    parser.add_argument("--split", help="harder split, e.g. plus1 (default: the run's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the problems and the sampling")
    parser.add_argument(
        "--eval-set", help="an eval_set.json (e.g. a comparison's) to take the problems from, in order"
    )
    add_device(parser)


def _model_dir(path: str) -> tuple[Path, Path | None]:
    """A model directory, from a run directory (its checkpoint) or a model directory itself;
    and the run directory (None for a model directory)."""
    from agents.lm.model import TASK_FILE
    from agents.rundir import CHECKPOINT, checkpoint_dir

    run = Path(path)
    # A model directory (a finished pre-training) holds the task file; a run, its checkpoint.
    if (run / TASK_FILE).is_file() or not (run / CHECKPOINT).is_dir():
        return run, None
    return checkpoint_dir(run), run


def _run_split(run: Path | None) -> str | None:
    """The split a run trained on (its config.json; a model directory's config.json is the model's)."""
    from agents.rl.config import RLConfig
    from agents.settings import read_json

    if run is None or not (run / "config.json").is_file():
        return None
    return RLConfig.from_dict(read_json(run / "config.json"), str(run / "config.json")).split


@command("eval", "accuracy of a fine-tuned run (or any model directory)", _eval_arguments)
def _eval(args: argparse.Namespace) -> int:
    from agents.evaluation.accuracy import rl_evaluation
    from agents.evaluation.heldout import heldout_eval_set
    from agents.lm.model import load_reference

    model_dir, run = _model_dir(args.run_dir)
    split = args.split or _run_split(run) or "plus1"
    model, task = load_reference(model_dir)
    if args.eval_set:
        eval_set, count = _load_eval_set(args.eval_set, task, model_dir), args.episodes
    else:
        count = args.episodes or 100
        eval_set = heldout_eval_set(task.comfort_digits, split, count, count, task=task.task)
    metrics = rl_evaluation(
        model.to(args.device),
        task.comfort_digits,
        split,
        task.temperature,
        count,
        args.seed,
        eval_set=eval_set,
    )
    sizes = ", ".join(f"{metrics[f'{name}_problems']} {name}" for name in dict.fromkeys(("comfort", split)))
    print(f"{model_dir}: N={task.comfort_digits}, T={task.temperature:g}, held-out problems: {sizes}")
    _print_eval(metrics, split)
    return 0


def _load_eval_set(path: str, task: TaskInfo, model_dir: Path) -> EvalSet:
    """The evaluation set at ``path``, refused in one line unless its task and N are the model's."""
    from agents.evaluation.heldout import EvalSet

    eval_set = EvalSet.load(path)
    if (eval_set.comfort_digits, eval_set.task) != (task.comfort_digits, task.task):
        raise ValueError(
            f"--eval-set {path} holds {eval_set.task} problems for N={eval_set.comfort_digits}, "
            f"but {model_dir} was pre-trained on {task.task} N={task.comfort_digits}"
        )
    return eval_set


def _passk_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models", nargs="+", help="run directories (their final checkpoint) or model directories"
    )
    parser.add_argument("--out", required=True, help="output directory: passk.csv and passk.png")
    parser.add_argument("--reference", action="store_true", help="add each run's reference model")
    parser.add_argument("--problems", type=positive_int, default=64, help="held-out problems of the split")
    parser.add_argument(
        "--samples", type=positive_int, default=32, help="samples per problem (n; k = 1, 2, 4, ... n)"
    )
    parser.add_argument("--split", help="split, e.g. plus1 (default: the first run's, else plus1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--eval-set", help="an eval_set.json (e.g. a comparison's) to take the problems from")
    add_device(parser)


@command("passk", "pass@k curves (unbiased estimator) of models on held-out problems", _passk_arguments)
def _passk(args: argparse.Namespace) -> int:
    from agents.evaluation.heldout import heldout_eval_set
    from agents.evaluation.passk import correct_counts, passk_rows
    from agents.experiments.plots import plot_passk
    from agents.lm.model import load_reference
    from agents.rl.bookkeeping import REFERENCE_FILE
    from agents.rundir import write_rows

    resolved = [_model_dir(path) for path in args.models]
    split = args.split or next((s for s in map(_run_split, (r for _, r in resolved)) if s), "plus1")
    models = [(str(model_dir), model_dir) for model_dir, _ in resolved]
    if args.reference:
        references = {Path((run / REFERENCE_FILE).read_text().strip()) for _, run in resolved if run}
        models = [(f"reference ({ref.name})", ref) for ref in sorted(references)] + models
    rows = []
    for label, model_dir in models:
        model, task = load_reference(model_dir)
        if args.eval_set:
            problems = _load_eval_set(args.eval_set, task, model_dir).head(split, args.problems)
        else:
            problems = heldout_eval_set(task.comfort_digits, split, args.problems, 1, task=task.task).head(
                split
            )
        counts = correct_counts(
            model.to(args.device),
            problems,
            task.comfort_digits,
            split,
            task.temperature,
            args.samples,
            args.seed,
            task=task.task,
        )
        rows += passk_rows(label, counts, args.samples)
        print(
            f"{label}: "
            + ", ".join(f"pass@{r['k']} {100 * r['pass_at_k']:.1f}%" for r in rows if r["model"] == label)
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "passk.csv", rows)
    print(f"wrote {out / 'passk.csv'} and {plot_passk(rows, out / 'passk.png')}")
    return 0


# --------------------------------------------------------------------------- compare and plot


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.backends import algorithm_names
    from agents.experiments.jobs import CompareSettings
    from agents.experiments.runners import BACKENDS
    from agents.rl.methods import METHODS

    default = CompareSettings()
    joined = lambda values: ",".join(map(str, values))  # noqa: E731
    parser.add_argument("--out", default="runs/compare", help="output directory (re-running resumes it)")
    parser.add_argument(
        "--methods", default=joined(default.methods), help=f"comma-separated, of: {joined(METHODS)}"
    )
    parser.add_argument("--seeds", default=joined(default.seeds), help="comma-separated seeds")
    parser.add_argument(
        "--algos", default=joined(default.algos), help=f"comma-separated, of: {joined(algorithm_names())}"
    )
    parser.add_argument("--betas", help="sweep beta for the critical methods, e.g. 10,150,1000,10000")
    parser.add_argument(
        "--refs",
        help="comma-separated reference model directories: the comparison on each (e.g. N = 2, 3, 4)",
    )
    parser.add_argument(
        "--tasks",
        help="comma-separated tasks (addition,multiply,multisum): the comparison on each of their "
        "shipped references (docs/tasks.md)",
    )
    _rl_arguments(parser, exclude=PER_RUN)
    parser.add_argument("--threshold", type=float, help="accuracy to reach (default: initial + 0.15)")
    parser.add_argument(
        "--workers", type=positive_int, help="parallel processes, at least 1 (default: one per CPU core)"
    )
    parser.add_argument("--backend", default="local", choices=BACKENDS, help="where the runs train")
    parser.add_argument("--ray-address", help="ray.init address (default: start or find a local Ray)")
    parser.add_argument(
        "--passk",
        type=int,
        default=0,
        metavar="N",
        help="also pass@k of the final checkpoints, N samples per problem",
    )
    parser.add_argument(
        "--passk-problems", type=positive_int, default=64, help="held-out problems for --passk"
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train again the runs in --out trained with other settings, or damaged (listed without it)",
    )
    add_device(parser)


def _references(args: argparse.Namespace) -> tuple[str, ...]:
    """``--refs``, or with ``--tasks`` the shipped references of those tasks (every N)."""
    from agents.lm.model import shipped_references

    if args.refs and args.tasks:
        raise ValueError("give --refs or --tasks, not both")
    if args.tasks:
        return tuple(str(path) for path in shipped_references(comma_list(args.tasks)))
    return tuple(comma_list(args.refs)) if args.refs else ()


@command(
    "compare",
    "methods x seeds in parallel: CSV, plots and a summary with CIs (defaults: uniform vs critical)",
    _compare_arguments,
)
def _compare(args: argparse.Namespace) -> int:
    from agents.experiments.compare import compare
    from agents.experiments.jobs import CompareSettings
    from agents.rl.methods import beta_sweep

    methods = comma_list(args.methods)
    if args.betas:
        methods = beta_sweep(methods, number_list(args.betas, "--betas", float))
    from agents.rl.config import RLConfig

    overrides = {**parse_settings(args.set), **config_overrides(args, RLConfig, exclude=PER_RUN)}
    settings = CompareSettings(
        methods=tuple(methods),
        seeds=tuple(number_list(args.seeds, "--seeds", int, minimum=0)),
        algos=tuple(comma_list(args.algos)),
        preset=args.preset,
        overrides=tuple(overrides.items()),
        reference=args.ref,
        references=_references(args),
        threshold=args.threshold,
        plugins=tuple(str(Path(plugin).resolve()) for plugin in args.plugin),
        device=args.device,
    )
    started = time.perf_counter()
    command_line = "arith-rl " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("arith-rl") else ""
    summary = compare(
        settings,
        args.out,
        args.workers,
        args.backend,
        args.ray_address,
        command=command_line,
        passk_samples=args.passk,
        passk_problems=args.passk_problems,
        retrain=args.retrain,
    )
    print(summary.read_text())
    print(f"wrote {args.out}/: evaluations.csv, critical.csv, accuracy.png, critical.png, summary.md")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", help="run directories (arith-rl train --out)")
    parser.add_argument("--out", required=True, help="PNG file")
    parser.add_argument("--labels", help="comma-separated, one per run (default: the directory names)")
    parser.add_argument("--split", default="plus1", help="the harder split's name in the runs' metrics")


@command("plot", "accuracy curves of training runs to a PNG", _plot_arguments)
def _plot(args: argparse.Namespace) -> int:
    from agents.experiments.plots import plot_runs

    labels = args.labels.split(",") if args.labels else None
    print(plot_runs(args.run_dirs, args.out, labels, args.split))
    return 0

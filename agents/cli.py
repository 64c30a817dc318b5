"""``arith-rl``: the command line of arith-gym.

arith-rl pretrain --digits 3 --size tiny --out runs/ref-n3
arith-rl eval-ref runs/ref-n3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

from agents import MissingExtra

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(function: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = function
        return function

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arith-rl", description="arith-gym: RL fine-tuning on scratchpad addition."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("pretrain", help="pre-train a reference model on 1..N-digit addition")
    pre.add_argument("--digits", type=int, default=3, help="comfort zone N")
    pre.add_argument("--size", default="tiny", help="model size preset (tiny, small, paper)")
    pre.add_argument("--out", required=True, help="output model directory")
    pre.add_argument("--steps", type=int)
    pre.add_argument("--batch-size", type=int)
    pre.add_argument("--lr", type=float)
    pre.add_argument("--warmup-steps", type=int)
    pre.add_argument("--glimpse-share", type=float, help="share of (N+1)-digit problems in the mix")
    pre.add_argument(
        "--unscored-critical",
        nargs="?",
        const="all",
        choices=("none", "all", "commas"),
        help="leave the critical tokens of glimpse problems (all, or only the commas) out of the loss",
    )
    pre.add_argument("--max-position-offset", type=int, help="random position-id offset per example")
    pre.add_argument("--temperature", type=float, help="RL sampling temperature recorded with the model")
    pre.add_argument("--seed", type=int)
    pre.add_argument("--eval-every", type=int)
    pre.add_argument("--eval-problems", type=int)
    pre.add_argument("--checkpoint-every", type=int)
    pre.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    pre.add_argument("--device", default="cpu")

    ev = sub.add_parser("eval-ref", help="accuracy table of a reference model by digit length")
    ev.add_argument("model_dir", help="model directory (arith-rl pretrain --out)")
    ev.add_argument("--problems", type=int, default=1000, help="problems per cell")
    ev.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    ev.add_argument("--offsets", default="0,1,2,3", help="columns N+k for these k")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--modes", default="greedy,sampled", help="which tables: greedy, sampled or both")
    ev.add_argument("--device", default="cpu")
    tr = sub.add_parser("train", help="RL fine-tuning of a reference model (PPO / A2C, weighted KL)")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--ref", default=None, help="reference model directory (default: the shipped one)")
    tr.add_argument("--preset", default="cpu", help="starting settings: cpu or paper")
    tr.add_argument("--config", help="JSON file of settings (may name a 'preset')")
    tr.add_argument(
        "--method", help="an exploration method of agents.methods (uniform, critical, kl_cov, ...)"
    )
    tr.add_argument("--kl-weighting", choices=("none", "uniform", "critical", "oracle_critical"))
    tr.add_argument("--algo", choices=("ppo", "a2c"))
    tr.add_argument("--seed", type=int)
    tr.add_argument("--total-episodes", type=int)
    tr.add_argument("--episodes-per-update", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--kl-coef", type=float)
    tr.add_argument("--beta", type=float)
    tr.add_argument("--temperature", type=float)
    tr.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting (JSON value)"
    )
    tr.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    tr.add_argument("--device", default="cpu")

    ev_rl = sub.add_parser("eval", help="accuracy of a fine-tuned run (or any model directory)")
    ev_rl.add_argument("run_dir", help="run directory (arith-rl train --out) or model directory")
    ev_rl.add_argument("--episodes", type=int, default=100)
    ev_rl.add_argument("--split", help="harder split (default: the run's)")
    ev_rl.add_argument("--seed", type=int, default=0)
    ev_rl.add_argument("--device", default="cpu")

    cmp = sub.add_parser(
        "compare",
        help="methods x seeds in parallel: CSV, plots and a summary with CIs (defaults: uniform vs critical)",
    )
    cmp.add_argument("--out", default="runs/compare", help="output directory (re-running resumes it)")
    cmp.add_argument("--methods", default="uniform,critical", help="comma-separated (agents.methods)")
    cmp.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds")
    cmp.add_argument("--algos", default="ppo", help="comma-separated: ppo, a2c, sb3-ppo, sb3-a2c")
    cmp.add_argument("--betas", help="sweep beta for the critical methods, e.g. 10,150,1000,10000")
    cmp.add_argument("--ref", default=None, help="reference model directory (default: the shipped one)")
    cmp.add_argument("--preset", default="cpu")
    cmp.add_argument("--total-episodes", type=int)
    cmp.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other RL setting (JSON value)"
    )
    cmp.add_argument("--threshold", type=float, help="accuracy to reach (default: initial + 0.15)")
    cmp.add_argument("--workers", type=int, help="parallel processes (default: one per CPU core)")
    cmp.add_argument("--backend", default="local", choices=("local", "ray"))
    cmp.add_argument("--ray-address", help="ray.init address (default: start or find a local Ray)")

    plot = sub.add_parser("plot", help="accuracy curves of training runs to a PNG")
    plot.add_argument("run_dirs", nargs="+")
    plot.add_argument("--out", required=True, help="PNG file")
    plot.add_argument("--labels", help="comma-separated, one per run")
    plot.add_argument("--split", default="plus1")

    bench = sub.add_parser("bench", help="throughput benchmarks")
    bench.add_argument("what", choices=("rollout", "env"))
    bench.add_argument("--batch", type=int, default=64)
    bench.add_argument("--digits", type=int, default=7)
    bench.add_argument("--size", default="tiny")
    bench.add_argument("--max-tokens", type=int, help="cap on tokens per episode (default: the env's limit)")
    bench.add_argument("--seed", type=int, default=0)

    an = sub.add_parser("analyze", help="certainty gap at critical tokens; data-driven critical-token finder")
    an.add_argument("model_dir", help="reference model directory")
    an.add_argument("--episodes", type=int, default=200, help="N+1 episodes for the certainty gap (0: skip)")
    an.add_argument("--finder-episodes", type=int, default=16, help="correct episodes to search (0: skip)")
    an.add_argument("--samples", type=int, default=8, help="K continuations per position, forced and kept")
    an.add_argument(
        "--positions",
        default="candidates",
        choices=("candidates", "all"),
        help="forced mistakes only where certainty is low (same found set, cheaper) or everywhere",
    )
    an.add_argument("--drop-threshold", type=float, default=0.5, help="drop in success that makes it fatal")
    an.add_argument("--certainty-margin", type=float, default=2.0, help="low: this many sd below the mean")
    an.add_argument("--certainty-temperature", type=float, default=4.0)
    an.add_argument("--certainty-kind", default="negentropy", choices=("negentropy", "max_prob"))
    an.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    an.add_argument("--episodes-from", default="sampled", choices=("sampled", "target"))
    an.add_argument("--seed", type=int, default=0)
    an.add_argument("--batch-size", type=int, default=128)
    an.add_argument("--device", default="cpu")
    return parser


def parse_settings(pairs: Sequence[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` pairs as settings (values parsed as JSON, else kept as strings)."""
    settings: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            settings[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.replace("-", "_")] = value
    return settings


def rl_config_from_args(args: argparse.Namespace):
    """The preset, then the config file, then ``--set`` pairs, then the named flags."""
    from agents.config import PRESETS, RLConfig

    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(PRESETS)}")
    config = RLConfig.from_file(args.config) if args.config else PRESETS[args.preset]
    overrides = {}
    overrides.update(parse_settings(args.set))
    named = ("kl_weighting", "algo", "seed", "total_episodes", "episodes_per_update", "lr", "kl_coef", "beta")
    overrides.update({k: getattr(args, k) for k in (*named, "temperature") if getattr(args, k) is not None})
    if getattr(args, "method", None):
        from agents.methods import apply_method

        config = apply_method(config, args.method)
    return config.with_overrides(**overrides)


@command("train")
def _train(args: argparse.Namespace) -> int:
    from agents.model import DEFAULT_REFERENCE
    from agents.train import Trainer

    config = rl_config_from_args(args)
    reference = args.ref or DEFAULT_REFERENCE
    if args.resume:
        saved = Path(args.out) / "reference.txt"
        reference = args.ref or (saved.read_text().strip() if saved.exists() else reference)
    trainer = Trainer(config, reference, args.out, args.device)
    if args.resume:
        trainer.load()
    elif (Path(args.out) / "checkpoint").exists():
        print(
            f"{args.out} already holds a run: pass --resume to continue it, or choose another --out",
            file=sys.stderr,
        )
        return 2
    trainer.run()
    _print_eval(trainer.evaluate(), trainer.config.split)
    return 0


def _print_eval(metrics: dict[str, float], split: str) -> None:
    for name in dict.fromkeys(("comfort", split)):
        greedy = metrics.get(f"{name}_greedy")
        line = f"{name:>8}: sampled {100 * metrics[f'{name}_sampled']:5.1f}%"
        print(line + (f"   greedy {100 * greedy:5.1f}%" if greedy is not None else ""))


@command("eval")
def _eval(args: argparse.Namespace) -> int:
    from agents.config import RLConfig
    from agents.evaluate import rl_evaluation
    from agents.model import load_reference

    run = Path(args.run_dir)
    model_dir = run / "checkpoint" if (run / "checkpoint").is_dir() else run
    model, task = load_reference(model_dir)
    split = args.split
    # A run directory's config.json is its RLConfig; a model directory's is the model's own.
    if split is None and model_dir != run and (run / "config.json").is_file():
        split = RLConfig(**json.loads((run / "config.json").read_text())).split
    split = split or "plus1"
    metrics = rl_evaluation(
        model.to(args.device), task.comfort_digits, split, task.temperature, args.episodes, args.seed
    )
    print(f"{model_dir}: N={task.comfort_digits}, T={task.temperature:g}, {args.episodes} episodes per cell")
    _print_eval(metrics, split)
    return 0


@command("compare")
def _compare(args: argparse.Namespace) -> int:
    from agents.compare import CompareSettings, compare
    from agents.methods import beta_sweep

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.betas:
        methods = beta_sweep(methods, [float(b) for b in args.betas.split(",")])
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    overrides = parse_settings(args.set)
    if args.total_episodes is not None:
        overrides["total_episodes"] = args.total_episodes
    settings = CompareSettings(
        methods=tuple(methods),
        seeds=seeds,
        algos=tuple(a.strip() for a in args.algos.split(",")),
        preset=args.preset,
        overrides=tuple(overrides.items()),
        reference=args.ref,
        threshold=args.threshold,
    )
    started = time.perf_counter()
    command_line = "arith-rl " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("arith-rl") else ""
    summary = compare(settings, args.out, args.workers, args.backend, args.ray_address, command=command_line)
    print(summary.read_text())
    print(f"wrote {args.out}/: evaluations.csv, critical.csv, accuracy.png, critical.png, summary.md")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


@command("plot")
def _plot(args: argparse.Namespace) -> int:
    from agents.plots import plot_runs

    labels = args.labels.split(",") if args.labels else None
    print(plot_runs(args.run_dirs, args.out, labels, args.split))
    return 0


@command("bench")
def _bench(args: argparse.Namespace) -> int:
    if args.what == "env":
        from arith_gym import bench

        return bench.main([]) or 0
    from agents.bench import rollout_benchmark

    r = rollout_benchmark(args.batch, args.digits, "plus1", args.size, args.max_tokens, args.seed)
    per_episode = r["tokens_per_episode"]
    print(f"batch {args.batch}, N={args.digits} plus1, {per_episode:.0f} tokens/episode, {args.size} model")
    for mode in ("cached", "naive"):
        print(
            f"{mode:>7}: {r[f'{mode}_tokens_per_s']:9.0f} tokens/s  ({r[f'{mode}_seconds']:.1f} s)"
            f"  env share {100 * r[f'{mode}_env_share']:.1f}%"
        )
    print(f"speedup cached / naive: {r['speedup']:.1f}x")
    return 0


@command("pretrain")
def _pretrain(args: argparse.Namespace) -> int:
    from agents.pretrain import PretrainConfig, pretrain, progress_evaluator

    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(PretrainConfig)
        if getattr(args, f.name, None) is not None
    }
    overrides["comfort_digits"] = args.digits
    config = PretrainConfig.from_dict(overrides)
    out = Path(args.out)
    if not args.resume and (out / "trainer_state").exists():
        print(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    pretrain(config, out, resume=args.resume, evaluate_fn=progress_evaluator(), device=args.device)
    print(f"saved {out} after {time.perf_counter() - started:.0f} s")
    return 0


@command("eval-ref")
def _eval_ref(args: argparse.Namespace) -> int:
    from agents.evaluate import format_length_table, length_table
    from agents.model import load_reference
    from agents.teacher_forcing import critical_report

    model, task = load_reference(args.model_dir)
    model.to(args.device)
    temperature = args.temperature if args.temperature is not None else task.temperature
    offsets = tuple(int(k) for k in args.offsets.split(","))
    started = time.perf_counter()
    modes = {"greedy": ("greedy", None), "sampled": (f"sampled at T={temperature:g}", temperature)}
    chosen = [m.strip() for m in args.modes.split(",")]
    if not chosen or any(m not in modes for m in chosen):
        raise ValueError(f"--modes takes greedy and/or sampled, got {args.modes!r}")
    for label, temp in (modes[m] for m in chosen):
        table = length_table(
            model, task.comfort_digits, args.problems, temp, offsets, args.seed, args.batch_size
        )
        title = f"N={task.comfort_digits}, {label}, {args.problems} problems per cell, 95% Wilson CI"
        print(format_length_table(table, task.comfort_digits, title))
    report = critical_report(model, task.comfort_digits, temperature, min(args.problems, 500), args.seed)
    gap = report["certainty_critical"] - report["certainty_other"]
    print(
        f"Where it fails on {task.comfort_digits + 1} digits (varying lengths, T={temperature:g}):\n"
        f"  teacher forcing: mean p(right token) {report['p_right_critical']:.3f} at critical tokens,"
        f" {report['p_right_other']:.3f} elsewhere;\n"
        f"  {100 * report['weak_share_critical']:.0f}% of the tokens with p(right) < 0.5 are critical"
        f" (critical tokens are {100 * report['critical_share_of_tokens']:.1f}% of all);\n"
        f"  sampled: {100 * report['sampled_accuracy']:.1f}% solved; of the failures,"
        f" {100 * report['failures_first_wrong_at_critical']:.0f}% first go wrong at a critical token;\n"
        f"  certainty J at T=4: {report['certainty_critical']:.3f} at critical tokens,"
        f" {report['certainty_other']:.3f} elsewhere (gap {gap:+.3f});"
        f" KL weight J^150: {report['kl_weight_critical']:.3f} vs {report['kl_weight_other']:.3f}."
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


@command("analyze")
def _analyze(args: argparse.Namespace) -> int:
    from agents.analyze import certainty_gap, find_critical_tokens, format_finder, format_gap
    from agents.model import load_reference

    model, task = load_reference(args.model_dir)
    model.to(args.device)
    temperature = args.temperature if args.temperature is not None else task.temperature
    shared = dict(
        certainty_temperature=args.certainty_temperature,
        certainty_kind=args.certainty_kind,
        source=args.episodes_from,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    started = time.perf_counter()
    print(f"{args.model_dir}: N={task.comfort_digits}, T={temperature:g}, seed {args.seed}\n")
    if args.episodes > 0:
        print(format_gap(certainty_gap(model, task.comfort_digits, temperature, args.episodes, **shared)))
    if args.finder_episodes > 0:
        report = find_critical_tokens(
            model,
            task.comfort_digits,
            temperature,
            args.finder_episodes,
            args.samples,
            args.positions,
            args.drop_threshold,
            args.certainty_margin,
            progress=True,
            **shared,
        )
        print(format_finder(report))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError, MissingExtra) as err:
        print(f"arith-rl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

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
        action="store_const",
        const=True,
        help="leave the critical tokens of glimpse problems out of the loss",
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
    tr.add_argument("--kl-weighting", choices=("none", "uniform", "critical"))
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
    return parser


def rl_config_from_args(args: argparse.Namespace):
    """The preset, then the config file, then ``--set`` pairs, then the named flags."""
    from agents.config import PRESETS, RLConfig

    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(PRESETS)}")
    config = RLConfig.from_file(args.config) if args.config else PRESETS[args.preset]
    overrides = {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            overrides[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.replace("-", "_")] = value
    named = ("kl_weighting", "algo", "seed", "total_episodes", "episodes_per_update", "lr", "kl_coef", "beta")
    overrides.update({k: getattr(args, k) for k in (*named, "temperature") if getattr(args, k) is not None})
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
        sampled, greedy = 100 * metrics[f"{name}_sampled"], 100 * metrics[f"{name}_greedy"]
        print(f"{name:>8}: sampled {sampled:5.1f}%   greedy {greedy:5.1f}%")


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"arith-rl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

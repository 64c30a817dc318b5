"""``arith-rl``: the command line of arith-gym.

arith-rl pretrain --digits 3 --size tiny --out runs/ref-n3
arith-rl eval-ref runs/ref-n3
"""

from __future__ import annotations

import argparse
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
    ev.add_argument("--device", default="cpu")
    return parser


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

    model, task = load_reference(args.model_dir)
    model.to(args.device)
    temperature = args.temperature if args.temperature is not None else task.temperature
    offsets = tuple(int(k) for k in args.offsets.split(","))
    started = time.perf_counter()
    for label, temp in (("greedy", None), (f"sampled at T={temperature:g}", temperature)):
        table = length_table(
            model, task.comfort_digits, args.problems, temp, offsets, args.seed, args.batch_size
        )
        title = f"N={task.comfort_digits}, {label}, {args.problems} problems per cell, 95% Wilson CI"
        print(format_length_table(table, task.comfort_digits, title))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

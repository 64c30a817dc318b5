"""``arith-rl criticality``: the ground-truth benchmark of critical-token selectors (docs/criticality.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.cli.registry import add_device, comma_list, command, number_list


def _criticality_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.evaluation.criticality_table import CriticalityConfig

    default = CriticalityConfig()
    parser.add_argument("model_dir", help="a reference or an RL checkpoint (a model directory)")
    parser.add_argument("--out", required=True, help="results folder; an interrupted run resumes there")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (problems and sampling)")
    parser.add_argument("--reference", help="the frozen reference (default: an RL run's own, else the model)")
    parser.add_argument(
        "--selectors", help="comma-separated selectors to score (default: every scorable one)"
    )
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples over problems")
    parser.add_argument(
        "--report",
        help="folder of the metrics and summary (default: --out), e.g. to re-read --out at another --epsilon",
    )
    tuned = (
        ("problems", int, "problems per seed"),
        ("group_size", int, "episodes per problem"),
        ("split", str, "the problems' split"),
        ("temperature", float, "sampling temperature"),
        ("epsilon", float, "π(a) from which an arm is plausible for the headroom"),
        ("arm_floor", float, "π(a) from which an arm gets continuations (<= epsilon)"),
        ("samples", int, "continuations per arm, first round"),
        ("max_samples", int, "continuations per arm at most (top-up where the label is unsure)"),
        ("threshold", float, "headroom from which a token is critical"),
        ("after_deviation", float, "inclusion probability of positions after the first deviation"),
        ("batch_size", int, "rows decoded together"),
    )
    for name, kind, text in tuned:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, default=getattr(default, name), help=text)
    add_device(parser)


@command(
    "criticality", "ground truth of critical tokens; every selector scored against it", _criticality_arguments
)
def _criticality(args: argparse.Namespace) -> int:
    from agents.evaluation.criticality_table import CriticalityConfig
    from agents.experiments.criticality import CriticalityRun, run_criticality

    settings = {name: getattr(args, name, None) for name in CriticalityConfig.__dataclass_fields__}
    run = CriticalityRun(
        model_dir=args.model_dir,
        out=args.out,
        seeds=tuple(number_list(args.seeds, "--seeds", minimum=0)),
        config=CriticalityConfig(**{k: v for k, v in settings.items() if v is not None}),
        reference_dir=args.reference,
        selectors=tuple(comma_list(args.selectors)) if args.selectors else None,
        resamples=args.resamples,
        report=args.report,
        device=args.device,
    )
    run_criticality(run)
    print((Path(args.report or args.out) / "summary.md").read_text())
    return 0

"""``arith-rl`` commands on models: pretrain, eval-ref, bench, analyze."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields

from agents.cli.registry import add_device, comma_list, command

# --------------------------------------------------------------------------- pretrain


def _pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.lm.bpe import ARCHITECTURES
    from agents.lm.model import SIZES
    from agents.lm.pretrain import UNSCORED_CHOICES, PretrainConfig
    from arith_gym.task import TASKS

    default = PretrainConfig()
    parser.add_argument("--task", default="Addition", choices=sorted(TASKS), help="the task (docs/tasks.md)")
    parser.add_argument("--digits", type=int, default=3, help="comfort zone N: operands of 1..N digits")
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES), help="model size preset")
    parser.add_argument(
        "--tokenizer",
        choices=("characters", "bpe"),
        help="the character ids (a GPT-2) or a byte-level BPE trained on the task (docs/tokenizers.md)",
    )
    parser.add_argument("--bpe-vocab", type=int, help=f"the BPE's vocabulary (default {default.bpe_vocab})")
    parser.add_argument(
        "--architecture",
        choices=("gpt2", *ARCHITECTURES),
        help="gpt2 for the characters; llama or qwen2 (from a config) for a BPE",
    )
    parser.add_argument("--out", required=True, help="run directory; the model is saved there when done")
    tuned = (
        ("steps", int, "optimizer steps"),
        ("batch_size", int, "problems per step"),
        ("lr", float, "peak learning rate (AdamW, warm-up then cosine)"),
        ("warmup_steps", int, "linear warm-up steps"),
        ("glimpse_share", float, "share of (N+1)-digit problems in the mix"),
        ("max_position_offset", int, "random position-id offset per example, up to this"),
        ("temperature", float, "RL sampling temperature recorded with the model"),
        ("seed", int, "seed of the initialisation and the data"),
        ("eval_every", int, "evaluate every this many steps"),
        ("eval_problems", int, "problems per evaluation"),
        ("checkpoint_every", int, "checkpoint every this many steps"),
    )
    for name, kind, text in tuned:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, help=f"{text} (default {getattr(default, name)})")
    parser.add_argument(
        "--unscored-critical",
        nargs="?",
        const="all",
        choices=tuple(UNSCORED_CHOICES),
        help="leave the critical tokens of glimpse problems (all, or only the commas) out of the loss",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    add_device(parser)


@command(
    "pretrain",
    "pre-train a reference model on a task's comfort zone (problems of difficulty 1..N)",
    _pretrain_arguments,
)
def _pretrain(args: argparse.Namespace) -> int:
    from agents.lm.pretrain import PretrainConfig, pretrain, progress_evaluator

    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(PretrainConfig)
        if getattr(args, f.name, None) is not None
    }
    overrides["comfort_digits"] = args.digits
    config = PretrainConfig.from_dict(overrides)
    started = time.perf_counter()
    pretrain(config, args.out, resume=args.resume, evaluate_fn=progress_evaluator(), device=args.device)
    print(f"saved {args.out} after {time.perf_counter() - started:.0f} s")
    return 0


# --------------------------------------------------------------------------- eval-ref


def _eval_ref_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="model directory (arith-rl pretrain --out)")
    parser.add_argument("--problems", type=int, default=1000, help="problems per cell")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    parser.add_argument("--offsets", default="0,1,2,3", help="columns N+k for these k")
    parser.add_argument("--seed", type=int, default=0, help="seed of the problems and the sampling")
    parser.add_argument("--batch-size", type=int, default=256, help="episodes decoded side by side")
    parser.add_argument("--modes", default="greedy,sampled", help="which tables: greedy, sampled or both")
    add_device(parser)


@command("eval-ref", "accuracy table of a reference model by digit length", _eval_ref_arguments)
def _eval_ref(args: argparse.Namespace) -> int:
    from agents.evaluation.accuracy import format_length_table, length_table
    from agents.evaluation.teacher_forcing import critical_report
    from agents.lm.decoding import GREEDY
    from agents.lm.model import load_codec, load_reference

    model, task = load_reference(args.model_dir)
    model.to(args.device)
    temperature = args.temperature if args.temperature is not None else task.temperature
    codec = load_codec(args.model_dir, model)
    # Another task, or another tokenizer: the gate (the tables below are addition's digit lengths,
    # taught with the character ids).
    if task.task != "Addition" or codec is not None:
        from agents.evaluation.task_gate import task_gate

        result = task_gate(
            model, task.task, task.comfort_digits, temperature, args.problems, args.seed, tokenizer=codec
        )
        sizes = f"{args.problems} held-out problems per split, T={temperature:g}"
        tokens = "" if codec is None else f", its own tokenizer ({codec.vocab_size} ids)"
        print(f"{task.task}, N={task.comfort_digits}{tokens}, {sizes}")
        print(result.markdown())
        return 0
    offsets = tuple(int(k) for k in args.offsets.split(","))
    started = time.perf_counter()
    modes = {"greedy": ("greedy", GREEDY), "sampled": (f"sampled at T={temperature:g}", temperature)}
    chosen = comma_list(args.modes)
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


# --------------------------------------------------------------------------- bench and analyze


ROLLOUT_BENCH_TOKENS = 64
"""``bench rollout``'s default cap on tokens per episode: the whole-context side costs the square of
it (64: about half a minute on one core; the ratio grows with the cap, docs/benchmarks.md)."""


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.lm.model import SIZES

    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=(*_BENCHES, "all"),
        help="rollout: KV cache vs whole context (random model); generate: a full RL rollout of the shipped"
        " model vs transformers' generate() of the policy alone (--batch, --seed); rl: training episodes/s"
        " of the cpu preset (--updates, --algo, --batch); env: single vs vector env; all (default): each of"
        " them at its default workload, under 2 minutes on one core",
    )
    parser.add_argument("--updates", type=int, default=2, help="rl: updates timed")
    parser.add_argument("--algo", default="ppo", help="rl: the algorithm whose settings the cpu preset takes")
    parser.add_argument("--batch", type=int, default=64, help="episodes per rollout")
    parser.add_argument("--digits", type=int, default=7, help="rollout: comfort zone N of the plus1 problems")
    parser.add_argument(
        "--size", default="tiny", choices=sorted(SIZES), help="rollout: model size (random weights)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=ROLLOUT_BENCH_TOKENS,
        help="rollout: cap on tokens per episode (0: the env's limit; its whole-context side takes 45 min)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the model, problems and sampling")


@command("bench", "throughput benchmarks, each a ratio measured in one run", _bench_arguments)
def _bench(args: argparse.Namespace) -> int:
    for kind in _BENCHES if args.what == "all" else (args.what,):
        print(f"== {kind}")
        _BENCHES[kind](args)
    return 0


def _bench_env(args: argparse.Namespace) -> None:
    from arith_gym import bench

    bench.main([])


def _bench_rl(args: argparse.Namespace) -> None:
    from agents.bench import rl_throughput

    r = rl_throughput(args.updates, args.algo, args.seed, args.batch)
    print(f"cpu preset, {args.algo}, shipped model: {r['episodes']:.0f} episodes in {r['seconds']:.1f} s")
    print(f"training episodes/s (rollouts + updates): {r['episodes_per_s']:.2f}")
    print(f"rollout share of that time: {100 * r['rollout_share']:.0f}%")


def _bench_generate(args: argparse.Namespace) -> None:
    from agents.bench import rollout_vs_generate

    g = rollout_vs_generate(args.batch, seed=args.seed)
    steps, live = f"{g['steps']:.0f}", f"{g['live_tokens']:.0f}"
    print(f"shipped model, batch {args.batch}, plus1, {steps} steps ({live} live tokens)")
    print(f"full RL rollout (policy, env, reference scores): {g['rollout_seconds']:.2f} s")
    print(f"generate() of the policy alone, every row {steps} tokens: {g['generate_seconds']:.2f} s")
    print(f"speedup rollout / generate: {g['speedup']:.2f}x")


def _bench_rollout(args: argparse.Namespace) -> None:
    from agents.bench import rollout_benchmark

    max_tokens = args.max_tokens or None
    r = rollout_benchmark(args.batch, args.digits, "plus1", args.size, max_tokens, args.seed)
    per_episode = r["tokens_per_episode"]
    print(f"batch {args.batch}, N={args.digits} plus1, {per_episode:.0f} tokens/episode, {args.size} model")
    for mode in ("cached", "naive"):
        print(
            f"{mode:>7}: {r[f'{mode}_tokens_per_s']:9.0f} tokens/s  ({r[f'{mode}_seconds']:.1f} s)"
            f"  env share {100 * r[f'{mode}_env_share']:.1f}%"
        )
    print(f"speedup cached / naive: {r['speedup']:.1f}x")


_BENCHES = {"rollout": _bench_rollout, "generate": _bench_generate, "rl": _bench_rl, "env": _bench_env}
"""Each ``arith-rl bench`` kind, in the order ``all`` runs them."""


def _analyze_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.evaluation.certainty_gap import SOURCES
    from agents.evaluation.finder import POSITION_MODES
    from agents.kl import CERTAINTY_KINDS

    parser.add_argument("model_dir", help="reference model directory")
    parser.add_argument(
        "--episodes", type=int, default=200, help="N+1 episodes for the certainty gap (0: skip)"
    )
    parser.add_argument(
        "--finder-episodes", type=int, default=16, help="correct episodes to search (0: skip)"
    )
    parser.add_argument(
        "--samples", type=int, default=8, help="K continuations per position, forced and kept"
    )
    parser.add_argument(
        "--positions",
        default="candidates",
        choices=POSITION_MODES,
        help="forced mistakes only where certainty is low (same found set, cheaper) or everywhere",
    )
    parser.add_argument(
        "--drop-threshold", type=float, default=0.5, help="drop in success that makes it fatal"
    )
    parser.add_argument(
        "--certainty-margin", type=float, default=2.0, help="low: this many sd below the mean"
    )
    parser.add_argument("--certainty-temperature", type=float, default=4.0, help="temperature of J")
    parser.add_argument(
        "--certainty-kind", default="negentropy", choices=CERTAINTY_KINDS, help="what J measures"
    )
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    parser.add_argument(
        "--episodes-from", default="sampled", choices=SOURCES, help="sampled episodes or targets"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the problems and the sampling")
    parser.add_argument("--batch-size", type=int, default=128, help="rows per forward pass")
    add_device(parser)


@command("analyze", "certainty gap at critical tokens; data-driven critical-token finder", _analyze_arguments)
def _analyze(args: argparse.Namespace) -> int:
    from agents.evaluation.certainty_gap import certainty_gap, format_gap
    from agents.evaluation.finder import find_critical_tokens, format_finder
    from agents.lm.model import load_reference

    model, task = load_reference(args.model_dir)
    if task.tokenizer != "characters":
        raise ValueError(
            f"{args.model_dir} has its own tokenizer; analyze reads character positions: run "
            "`arith-rl criticality` (any tokenizer: ground truth, the certainty gap, every selector)"
        )
    model.to(args.device)
    temperature = args.temperature if args.temperature is not None else task.temperature
    shared = dict(
        certainty_temperature=args.certainty_temperature,
        certainty_kind=args.certainty_kind,
        source=args.episodes_from,
        seed=args.seed,
        batch_size=args.batch_size,
        task=task.task,
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

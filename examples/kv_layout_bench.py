"""Why GPT2Decoder keeps its KV cache in two parts: one decode step's attention, three layouts.

At a rollout's sizes (64 rows, 4 heads of 32, 4 layers, ``--length`` cached positions), times the
attention of one new token (scores, softmax, weighted values) per layer over keys and values
stored

- ``contiguous``: ``[B, H, T, d]``, nothing between rows (what a copy per step would give);
- ``gapped``: the first T columns of ``[B, H, capacity, d]`` buffers, as transformers' caches
  and a buffer that grows by doubling hold them (rows separated by unused capacity);
- ``two-part``: ``agents.lm.gpt2_decoding``'s layout, a contiguous part plus a 32-column buffer
  (its own attention function, ``two_part_attention``).

    OMP_NUM_THREADS=1 python examples/kv_layout_bench.py [--length 220] [--capacity 512]
"""

from __future__ import annotations

import argparse
import time

import torch

from agents.lm.gpt2_decoding import two_part_attention


def attend(query, keys, values):
    weights = torch.softmax(torch.matmul(query, keys.transpose(-1, -2)), dim=-1)
    return torch.matmul(weights, values)


def milliseconds_per_layer(step, layers: int, repeats: int) -> float:
    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats / layers * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=220, help="cached positions per row")
    parser.add_argument("--capacity", type=int, default=512, help="columns of the gapped buffers")
    parser.add_argument("--batch", type=int, default=64, help="rows")
    parser.add_argument(
        "--layers", type=int, default=4, help="layers (their caches together exceed the L3 cache)"
    )
    parser.add_argument("--repeats", type=int, default=50, help="timed steps")
    args = parser.parse_args()
    if not 32 <= args.length <= args.capacity:
        parser.error("need 32 <= --length <= --capacity")
    torch.manual_seed(0)
    shape = (args.batch, 4, 1, 32)
    query = torch.randn(shape)
    full = lambda columns: torch.randn(args.batch, 4, columns, 32)  # noqa: E731
    contiguous = [(full(args.length), full(args.length)) for _ in range(args.layers)]
    gapped = [
        (full(args.capacity)[:, :, : args.length], full(args.capacity)[:, :, : args.length])
        for _ in range(args.layers)
    ]
    settled = args.length - args.length % 32 if args.length % 32 else args.length - 32
    two_part = [
        (
            (full(settled), full(settled)),
            (full(32)[:, :, : args.length - settled], full(32)[:, :, : args.length - settled]),
        )
        for _ in range(args.layers)
    ]
    results = {
        "contiguous": milliseconds_per_layer(
            lambda: [attend(query, k, v) for k, v in contiguous], args.layers, args.repeats
        ),
        "gapped": milliseconds_per_layer(
            lambda: [attend(query, k, v) for k, v in gapped], args.layers, args.repeats
        ),
        "two-part": milliseconds_per_layer(
            lambda: [two_part_attention(query, s, r) for s, r in two_part], args.layers, args.repeats
        ),
    }
    print(f"batch {args.batch}, 4 heads x 32, {args.layers} layers, {args.length} cached positions", end="")
    print(f" (gapped: capacity {args.capacity})")
    for name, ms in results.items():
        print(f"{name:>11}: {ms:.3f} ms per layer-step")
    print(f"gapped / two-part: {results['gapped'] / results['two-part']:.2f}x")


if __name__ == "__main__":
    main()

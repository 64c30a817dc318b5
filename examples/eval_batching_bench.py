"""Evaluation of the held-out set (400 plus1 + 200 comfort, sampled at T 1) as one merged batch
vs one call per split, on the shipped model, one thread: OMP_NUM_THREADS=1 python examples/eval_batching_bench.py"""

import time

import torch

torch.set_num_threads(1)
from agents.evaluation.accuracy import EVAL_BATCH
from agents.evaluation.heldout import heldout_eval_set
from agents.lm.episodes import play_episodes
from agents.lm.model import load_reference

model, task = load_reference()
es = heldout_eval_set(3, "plus1", 400, 200)
comfort, plus1 = es.head("comfort"), es.head("plus1")
for rep in range(2):
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    a, _ = play_episodes(
        model, comfort, 3, "comfort", 1.0, g
    )  # as before: one call per split, batches of 256
    b, _ = play_episodes(model, plus1, 3, "plus1", 1.0, g)
    separate = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    c, _ = play_episodes(model, comfort + plus1, 3, "plus1", 1.0, g, EVAL_BATCH)
    merged = time.perf_counter() - t
    print(
        f"run {rep}: separate {separate:.1f} s (comfort {a.mean():.3f}, plus1 {b.mean():.3f}); merged {merged:.1f} s (comfort {c[:200].mean():.3f}, plus1 {c[200:].mean():.3f}); ratio {separate / merged:.2f}x"
    )

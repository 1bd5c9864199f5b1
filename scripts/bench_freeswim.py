"""Benchmark FreeSwim's sliding-window attention on the CPU.

1. Memory: extra peak memory (over the inputs) of the ``sdpa`` sliding path at growing grids with
   a fixed window, against the dense boolean-masked ``math`` reference measured the same way. Each
   measurement runs in a fresh process (peak RSS, Linux; glibc is told to return every large
   block at once, so RSS follows the live tensors).
2. Time: the official 1080p grid (21 x 68 x 120 tokens, head dim 128, one head, window all frames
   x 31 x 53, log-scaled softmax) with the ``sdpa`` path, against full attention (dense SDPA)
   timed on a 1/64 sample of the queries and extrapolated.

Usage: ``python scripts/bench_freeswim.py [--skip-1080p] [--threads N]``. Timings depend on how
busy the CPU is; the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMORY_GRIDS = ((2, 32, 32), (2, 64, 64), (2, 128, 128), (2, 256, 256))
MEMORY_WINDOW = (None, 9, 9)
MEMORY_HEADS, MEMORY_DIM = 2, 64
DENSE_LIMIT = 8192  # tokens: above this the dense reference needs several GB
GRID_1080P = (21, 68, 120)  # 81 frames at 1088 x 1920: 21 latent frames, 16-pixel tokens
WINDOW_1080P = (None, 31, 53)  # official window of Wan2.1-1.3B (30 x 52 training grid + 1)


def _current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory_worker(grid: tuple[int, ...], backend: str) -> dict:
    import torch

    from restoregen.attention import sliding_window_attention

    torch.manual_seed(0)
    length = math.prod(grid)
    q, k, v = (torch.randn(1, MEMORY_HEADS, length, MEMORY_DIM) for _ in range(3))
    with torch.no_grad():
        small = torch.randn(1, 1, 2 * 8 * 8, MEMORY_DIM)
        sliding_window_attention(small, small, small, (2, 8, 8), MEMORY_WINDOW, backend=backend)  # load kernels
        before = _current_rss_mb()
        sliding_window_attention(q, k, v, grid, MEMORY_WINDOW, backend=backend)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tokens": length, "extra_mb": peak - before}


def measure_memory(grid, backend) -> dict:
    command = [sys.executable, __file__, "--memory-worker", backend, *map(str, grid)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory() -> None:
    print(f"== peak memory over the inputs: window {MEMORY_WINDOW}, {MEMORY_HEADS} heads x {MEMORY_DIM}, fp32")
    print(f"{'grid':>14} {'tokens':>7} {'sdpa MB':>9} {'MB/1k tok':>10} {'math MB':>9} {'math/sdpa':>10}")
    rows = []
    for grid in MEMORY_GRIDS:
        sliding = measure_memory(grid, "sdpa")
        dense = measure_memory(grid, "math") if sliding["tokens"] <= DENSE_LIMIT else None
        rows.append((grid, sliding, dense))
        dense_text = (f"{dense['extra_mb']:9.1f} {dense['extra_mb'] / sliding['extra_mb']:9.1f}x" if dense
                      else f"{'(' + format(4 * MEMORY_HEADS * sliding['tokens'] ** 2 / 2**20, '.0f') + ')':>9}"
                      f" {'skipped':>10}")
        print(f"{str(grid):>14} {sliding['tokens']:7d} {sliding['extra_mb']:9.1f} "
              f"{1000 * sliding['extra_mb'] / sliding['tokens']:10.2f} {dense_text}")
    for (g0, s0, d0), (g1, s1, d1) in itertools.pairwise(rows):
        growth = f"sdpa x{s1['extra_mb'] / s0['extra_mb']:.1f}"
        if d0 and d1:
            growth += f", math x{d1['extra_mb'] / d0['extra_mb']:.1f}"
        print(f"tokens x{s1['tokens'] / s0['tokens']:.0f} ({g0} -> {g1}): {growth}")
    (_, a, _), (_, b, _) = rows[-2:]
    slope = (b["extra_mb"] - a["extra_mb"]) / (b["tokens"] - a["tokens"])
    print(f"sdpa at the largest grids: {a['extra_mb'] - slope * a['tokens']:.0f} MB (chunk budget) + "
          f"{1024 * slope:.2f} KB per token; math: quadratic (one score matrix in parentheses, not run)")


def bench_1080p() -> None:
    import torch
    import torch.nn.functional as F

    from restoregen.attention import sliding as sliding_module
    from restoregen.attention import sliding_window_attention
    from restoregen.diffusion.official import OFFICIAL_TRAIN_GRID, log_scale

    length = math.prod(GRID_1080P)
    scale = log_scale(128, math.prod(OFFICIAL_TRAIN_GRID))
    window = sliding_module.resolve_window(GRID_1080P, WINDOW_1080P)[1]
    keys = math.prod(window)
    print(f"\n== official 1080p grid {GRID_1080P} = {length} tokens, head dim 128, 1 head, window {window} "
          f"= {keys} keys per query ({100 * keys / length:.1f}% of the sequence), {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, length, 128) for _ in range(3))
    start = time.perf_counter()
    sliding_module._gather_plan(GRID_1080P, window, torch.device("cpu"))
    plan_s = time.perf_counter() - start
    with torch.no_grad():
        before = _current_rss_mb()
        start = time.perf_counter()
        out = sliding_window_attention(q, k, v, GRID_1080P, WINDOW_1080P, scale, backend="sdpa")
        sliding_s = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sample = torch.arange(0, length, 64)
        start = time.perf_counter()
        F.scaled_dot_product_attention(q[:, :, sample], k, v, scale=scale)
        full_s = (time.perf_counter() - start) * length / len(sample)
    assert torch.isfinite(out).all()
    print(f"gather plan (cached per grid/window/device): {plan_s:.2f} s")
    print(f"sliding window (sdpa): {sliding_s:.1f} s, {4 * length * keys * 128 / sliding_s / 1e9:.1f} useful GFLOP/s, "
          f"peak memory {peak - before:.0f} MB over the inputs")
    print(f"full attention (dense SDPA, extrapolated from {len(sample)} queries): {full_s:.1f} s")
    print(f"sliding / full time: {sliding_s / full_s:.2f} (window holds {keys / length:.2f} of the keys); "
          f"a dense boolean mask alone would take {length**2 / 2**30:.0f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-1080p", action="store_true", help="only the memory benchmark")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--memory-worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        backend, *grid = args.memory_worker
        print(json.dumps(memory_worker(tuple(int(n) for n in grid), backend)))
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench_memory()
    if not args.skip_1080p:
        bench_1080p()
    return 0


if __name__ == "__main__":
    sys.exit(main())

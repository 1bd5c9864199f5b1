"""The benchmark table: each network's fast path against the explicit ``math`` path, in one run.

    restoregen bench [--quick] [--only TEXT] [--json PATH] [--threads N] [--compile] [--device cuda]
    python scripts/bench.py ...   (the same)

Every path runs in its own process (so peak memory and the allocator's state are its own): it
builds the network with seeded random weights and measures the peak resident memory of its first
forward above the baseline. The processes stay alive, and the run then times ``--repeats``
rounds in which each path runs one forward in turn under ``torch.inference_mode``. The table
gives each path's median time, and its speed-up against ``math`` as the median over the rounds of
the two times of the same round: a machine whose speed drifts (other load, clock changes) slows
both forwards of a round alike, so the ratio holds. ``fast`` is the default path (attention
backend ``auto``); ``math`` is the explicit computation in the official order. FLOPs come from
``torch.utils.flop_counter`` (multiply-add = 2 FLOPs) on the ``math`` path and are compared with
this machine's fp32 matmul rate, measured at the start of the run.

``--device cuda`` runs the GPU table instead: HAT-S x4 at 256x256 in bfloat16 through the default
(``auto``) and ``triton`` backends against ``math`` in float32, peak memory from the CUDA allocator,
and the SDPA kernels each path actually ran (read from the profiler).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

# Official network_g arguments of the released checkpoints the table covers.
HAT_S_X4 = dict(upscale=4, in_chans=3, img_size=64, window_size=16, compress_ratio=24, squeeze_factor=24,
                conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[6] * 6, embed_dim=144, num_heads=[6] * 6,
                mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv")
HAT_X4 = {**HAT_S_X4, "compress_ratio": 3, "squeeze_factor": 30, "embed_dim": 180}
DRCT_X4 = dict(upscale=4, in_chans=3, img_size=64, window_size=16, compress_ratio=3, squeeze_factor=30,
               conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[6] * 6, embed_dim=180, num_heads=[6] * 6,
               mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv")
DLGSANET_LIGHT_X4 = dict(upscale=4, in_chans=3, dim=48, groups=4, blocks=3, buildblock_type="sparseedge",
                         window_size=7, idynamic_num_heads=6, idynamic_ffn_type="GDFN",
                         idynamic_ffn_expansion_factor=2.0, idynamic=True, restormer_num_heads=6,
                         restormer_ffn_type="GDFN", restormer_ffn_expansion_factor=2.0, tlc_flag=True,
                         tlc_kernel=48, activation="relu", body_norm=False, img_range=1.0,
                         upsampler="pixelshuffledirect")
STYLESWIN_256 = dict(size=256, style_dim=512, n_mlp=8, channel_multiplier=2, lr_mlp=0.01, enable_full_resolution=8,
                     use_checkpoint=False)


@dataclass(frozen=True)
class Case:
    name: str
    arch: str  # registered network, or "freeswim" / "upscale"
    kwargs: dict
    size: int  # input side (latent batch for StyleSwin)
    quick: bool = True  # part of --quick


def cases() -> list[Case]:
    sr = [("HAT-S x4", "HAT", HAT_S_X4), ("HAT x4", "HAT", HAT_X4), ("DRCT x4", "DRCT", DRCT_X4),
          ("DLGSANet-light x4", "DLGSANet", DLGSANET_LIGHT_X4)]
    # names as in README's table, so that `--only` takes a row name from there
    table = [Case(f"{name}, {size}x{size}", arch, kwargs, size) for name, arch, kwargs in sr for size in (64, 128)]
    table.append(Case("StyleSwin G 256, batch 1", "StyleSwinGenerator", STYLESWIN_256, 1))
    # a short clip at twice Wan-1.3B's 30x52 latent grid would not fit the dense math path; this one does
    table.append(Case("FreeSwim attention, 5x32x56 grid, window 5x17x29, d 128", "freeswim",
                      dict(grid=(5, 32, 56), window=(5, 17, 29), heads=1, head_dim=128), 0))
    return table


GPU_CASES = [Case("HAT-S x4, 256x256", "HAT", HAT_S_X4, 256),
             Case("HAT x4, 256x256", "HAT", HAT_X4, 256, quick=False)]

# path -> (attention backend, dtype, torch.compile)
PATHS = {"fast": ("auto", "float32", False), "math": ("math", "float32", False),
         "fast+compile": ("auto", "float32", True), "fast bf16": ("auto", "bfloat16", False),
         "triton bf16": ("triton", "bfloat16", False)}

MEMORY_CASES = [
    Case("HAT-S x4 upscale 1024x1024, 256 tiles", "upscale", dict(model=HAT_S_X4, tile=256, overlap=16), 1024,
         quick=False),
    Case("HAT-S x4, 256x256 untiled", "HAT", HAT_S_X4, 256, quick=False),
]
CASE_WIDTH = 56  # the case column


def _words(text: str) -> str:
    """Lower case, commas ignored, single spaces: how --only compares names."""
    return " ".join(text.lower().replace(",", " ").split())


def select_cases(pool: list[Case], only: str, quick: bool) -> list[Case]:
    """The cases whose name contains ``only`` (any letter case; commas and extra spaces ignored),
    without the slow ones under ``quick``. ``ValueError`` saying which rows exist if none is left."""
    matching = [c for c in pool if _words(only) in _words(c.name)]
    selected = [c for c in matching if c.quick or not quick]
    if not selected:
        if matching:
            raise ValueError(f"--only {only!r} matches only rows that --quick leaves out: "
                             f"{'; '.join(c.name for c in matching)}")
        raise ValueError(f"--only {only!r} matches no row; the rows are: {'; '.join(c.name for c in pool)}")
    return selected


@dataclass
class Result:
    case: str
    path: str  # fast | math | fast+compile
    ms: float | None = None
    peak_mb: float | None = None
    gflop: float | None = None
    output_mpix: float | None = None
    compile_s: float | None = None
    skipped: str | None = None
    extra: dict = field(default_factory=dict)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _workload(case: Case, device: str = "cpu", dtype_name: str = "float32"):
    """(callable running one forward, output megapixels per forward) for a case."""
    import torch

    dtype = getattr(torch, dtype_name)

    from . import archs

    torch.manual_seed(0)
    if case.arch == "freeswim":
        from .attention import sliding_window_attention

        frames, height, width = case.kwargs["grid"]
        q, k, v = (torch.randn(1, case.kwargs["heads"], frames * height * width, case.kwargs["head_dim"])
                   for _ in range(3))
        return lambda: sliding_window_attention(q, k, v, case.kwargs["grid"], case.kwargs["window"]), 0.0
    if case.arch == "upscale":
        from .inference.loading import network_info
        from .inference.tiling import Upscaler

        model = archs.build("HAT", **case.kwargs["model"])
        info = network_info("HAT", model, case.kwargs["model"], dtypes=(torch.float32,))
        upscaler = Upscaler(model, info, "cpu", "fp32", case.kwargs["tile"], case.kwargs["overlap"])
        image = torch.rand(1, 3, case.size, case.size)
        return lambda: upscaler(image), (case.size * 4) ** 2 / 1e6
    if case.arch not in archs.list_archs():
        raise LookupError(f"{case.arch} is not available in this build")
    model = archs.build(case.arch, **case.kwargs).eval().requires_grad_(False).to(device, dtype)
    if case.arch == "StyleSwinGenerator":
        z = torch.randn(case.size, model.style_dim).to(device, dtype)
        return lambda: model(z), case.size * model.size**2 / 1e6
    x = torch.rand(1, 3, case.size, case.size).to(device, dtype)
    scale = case.kwargs["upscale"]
    return lambda: model(x), (case.size * scale) ** 2 / 1e6


def first_forward(case: Case, path: str, threads: int, count_flops: bool):
    """Build ``case`` for a CPU ``path`` and run its first forward: peak memory (one-time caches
    included), FLOPs, compile time. Returns ``(result, run)``; ``run`` is None when skipped."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .attention import attention_backend

    torch.set_num_threads(threads)
    backend, dtype_name, compiled = PATHS[path]
    result = Result(case.name, path)
    try:
        run, result.output_mpix = _workload(case, "cpu", dtype_name)
    except (LookupError, ImportError) as error:
        result.skipped = str(error)
        return result, None
    with attention_backend(backend), torch.inference_mode():
        if compiled:
            run = torch.compile(run)
            start = time.perf_counter()
            run()
            result.compile_s = time.perf_counter() - start
        gc.collect()
        base = _rss_mb()
        start = time.perf_counter()
        with FlopCounterMode(display=False) if count_flops else contextlib.nullcontext() as counter:
            run()
        result.ms = (time.perf_counter() - start) * 1e3  # the time of the memory rows, which repeat nothing
        result.peak_mb = _peak_rss_mb() - base
        if count_flops:
            result.gflop = counter.get_total_flops() / 1e9
    return result, run


def _path_worker(conn, case: Case, path: str, threads: int, count_flops: bool) -> None:
    """One CPU path in its own process: sends the first forward's result, then runs one forward per
    ``"warmup"`` or ``"time"`` request until ``"stop"``, and sends the result with the median time."""
    try:
        import torch

        from .attention import attention_backend

        result, run = first_forward(case, path, threads, count_flops)
        conn.send(result)
        if run is None:
            return
        times = []
        with attention_backend(PATHS[path][0]), torch.inference_mode():
            while (request := conn.recv()) != "stop":
                start = time.perf_counter()
                run()
                if request == "time":
                    times.append(time.perf_counter() - start)
                conn.send(None)
        if times:
            result.ms = statistics.median(times) * 1e3
            result.extra["round_ms"] = [t * 1e3 for t in times]
        conn.send(result)
    except Exception:  # noqa: BLE001 - reported by the parent
        conn.send(RuntimeError(f"bench worker for {case.name!r} ({path}) failed:\n{traceback.format_exc()}"))


def _receive(conn):
    message = conn.recv()
    if isinstance(message, Exception):
        raise message
    return message


def measure_cpu(case: Case, paths: list[str], threads: int, repeats: int, warmup: int,
                flop_paths: set[str]) -> dict[str, Result]:
    """Each path's first forward alone in its own process, then ``warmup`` untimed and ``repeats``
    timed rounds, every path one forward per round, in turn (in reverse order every other round)."""
    context = get_context("spawn")
    workers, results = {}, {}
    try:
        for path in paths:
            conn, child = context.Pipe()
            process = context.Process(target=_path_worker, args=(child, case, path, threads, path in flop_paths),
                                      daemon=True)
            process.start()
            results[path] = _receive(conn)
            if not results[path].skipped:
                workers[path] = (process, conn)
        for round_index, request in enumerate(["warmup"] * warmup + ["time"] * repeats):
            in_turn = list(workers.values())
            # the order reverses every round, so a drift within rounds favours no path
            for _, conn in in_turn if round_index % 2 == 0 else reversed(in_turn):
                conn.send(request)
                _receive(conn)
        for path, (_, conn) in workers.items():
            conn.send("stop")
            results[path] = _receive(conn)
    finally:
        for process, conn in workers.values():
            conn.close()
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return results


def measure_cuda(case: Case, path: str, repeats: int, warmup: int) -> Result:
    """One GPU measurement; runs in its own process."""
    backend, dtype_name, _ = PATHS[path]
    result = Result(case.name, path)
    try:
        run, output_mpix = _workload(case, "cuda", dtype_name)
    except (LookupError, ImportError) as error:
        result.skipped = str(error)
        return result
    return _measure_cuda(result, run, output_mpix, backend, repeats, warmup)


def median_seconds(fn, repeats: int, warmup: int = 0) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure_cuda(result: Result, run, output_mpix: float, backend: str, repeats: int, warmup: int) -> Result:
    """GPU timing (CUDA events around each forward) and the allocator's peak above the weights."""
    import torch

    from .attention import attention_backend, sdpa_kernels

    with attention_backend(backend), torch.inference_mode():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        result.peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
        for _ in range(max(warmup, 3)):
            run()
        times = []
        for _ in range(max(repeats, 10)):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        result.ms = statistics.median(times)
        result.extra["sdpa_kernels"] = list(sdpa_kernels(run))
        result.extra["device_name"] = torch.cuda.get_device_name()
    result.output_mpix = output_mpix
    return result


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """fp32 matmul rate on the CPU, bf16 on CUDA."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))

    def step():
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / median_seconds(step, repeats, warmup=1) / 1e9


def _cuda_name() -> str:
    import torch

    return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"


def _in_process(fn, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def speedup(result: Result, reference: Result | None) -> float | None:
    """How many times faster ``result`` ran than ``reference``: the median over the rounds of the
    two times measured back to back in each round (a machine that drifts between rounds cancels
    out), or the ratio of the two times where rounds were not recorded."""
    if reference is None or not reference.ms or not result.ms:
        return None
    rounds = list(zip(reference.extra.get("round_ms", []), result.extra.get("round_ms", []), strict=False))
    if rounds and len(rounds) == len(reference.extra["round_ms"]) == len(result.extra["round_ms"]):
        return statistics.median(ref / ms for ref, ms in rounds)
    return reference.ms / result.ms


def _row(result: Result, peak_gflops: float, reference: Result | None) -> str:
    if result.skipped:
        return f"{result.case:<{CASE_WIDTH}} {result.path:<13} skipped: {result.skipped}"
    mpix_s = f"{result.output_mpix / (result.ms / 1e3):8.3f}" if result.output_mpix else f"{'-':>8}"
    gflop = f"{result.gflop:8.1f}" if result.gflop else f"{'-':>8}"
    peak = f"{result.gflop / (result.ms / 1e3) / peak_gflops * 100:5.1f}%" if result.gflop else f"{'-':>6}"
    ratio = speedup(result, reference)
    speedup_text = f"{ratio:6.2f}x" if ratio else f"{'-':>7}"
    compile_s = f" (compile {result.compile_s:.1f} s)" if result.compile_s else ""
    kernels = result.extra.get("sdpa_kernels")
    kernels = f" SDPA: {', '.join(kernels) or 'none'}" if kernels is not None else ""
    memory = f" {result.peak_mb / reference.peak_mb:5.2f}x mem" if reference and reference.peak_mb and kernels else ""
    return (f"{result.case:<{CASE_WIDTH}} {result.path:<13} {result.ms:10.1f} {mpix_s} {result.peak_mb:9.0f} "
            f"{gflop} {peak} "
            f"{speedup_text}{memory}{compile_s}{kernels}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restoregen bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(parser)
    return run(parser.parse_args(argv))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip the 1024x1024 memory rows")
    parser.add_argument("--only", default="", help="run only the rows whose name contains this text, e.g. a row "
                        "name of README's table (\"HAT-S x4, 64x64\"; letter case and commas do not matter)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)")
    parser.add_argument("--compile", action="store_true", help="also time the fast path under torch.compile")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: the GPU table (bf16 fast and triton paths against fp32 math)")
    parser.add_argument("--json", default="bench_results/bench.json", help="where to write the results")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    repeats = args.repeats or (3 if args.quick else 5)
    warmup = 0 if args.quick else 1  # untimed rounds after the first forward
    cuda = args.device == "cuda"
    try:
        selected = select_cases(GPU_CASES if cuda else cases() + MEMORY_CASES, args.only, args.quick)
    except ValueError as error:
        print(f"restoregen bench: error: {error}", file=sys.stderr)
        return 2
    if cuda:
        import torch

        if not torch.cuda.is_available():
            print("restoregen bench: --device cuda, but torch sees no CUDA device", file=sys.stderr)
            return 2
    peak_gflops = _in_process(matmul_gflops, args.threads, 2048, 5, args.device)
    where = (_in_process(_cuda_name) if cuda else
             f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, torch threads {args.threads}")
    rounds = f"median of {repeats}" if cuda else f"median of {repeats} rounds, the paths timed in turn"
    print(f"restoregen bench: {where}, batch 1; {'bf16' if cuda else 'fp32'} matmul peak {peak_gflops:.0f} "
          f"GFLOP/s (2048^3); {rounds}", flush=True)
    print(f"{'case':<{CASE_WIDTH}} {'path':<13} {'ms':>10} {'MP/s':>8} {'peak MB':>9} {'GFLOP':>8} {'%peak':>6} "
          f"{'vs math':>7}")
    if cuda:
        paths = ["fast bf16", "triton bf16", "math"]
    else:
        paths = ["fast", "math"] + (["fast+compile"] if args.compile else [])
    results: list[Result] = []
    for case in selected:
        if case.arch == "upscale":
            case_paths = ["fast"]
        elif case in MEMORY_CASES:
            case_paths = ["math"]
        else:
            case_paths = paths
        # FLOPs are counted on the explicit path (torch's counter does not see SDPA's CPU kernel)
        case_paths = sorted(case_paths, key=lambda p: p != "math")
        if cuda:
            measured = {path: _in_process(measure_cuda, case, path, repeats, warmup) for path in case_paths}
        else:
            memory_row = case in MEMORY_CASES  # one forward: its peak memory and time
            flop_paths = set() if memory_row else {"math"} if "math" in case_paths else set(case_paths)
            measured = measure_cpu(case, case_paths, args.threads, 0 if memory_row else repeats,
                                   0 if memory_row else warmup, flop_paths)
        for result in measured.values():
            if result.gflop is None and "math" in measured:
                result.gflop = measured["math"].gflop
        for path, result in sorted(measured.items(), key=lambda item: item[0] == "math"):
            reference = measured.get("math") if path != "math" else None
            if speedup(result, reference):
                result.extra["vs_math"] = speedup(result, reference)
            print(_row(result, peak_gflops, reference), flush=True)
            results.append(result)
    memory = {r.case: r for r in results if not r.skipped and any(r.case == c.name for c in MEMORY_CASES)}
    if len(memory) == 2:
        tiled, untiled = (memory[c.name] for c in MEMORY_CASES)
        ratio = (tiled.peak_mb / MEMORY_CASES[0].size**2) / (untiled.peak_mb / MEMORY_CASES[1].size**2)
        print(f"peak memory per input pixel: tiled 1024x1024 fast / untiled 256x256 math = {ratio:.3f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": platform.platform(), "device": where, "cores": os.cpu_count(), "threads": args.threads,
               "python": sys.version.split()[0], "matmul_gflops": peak_gflops, "repeats": repeats,
               "results": [asdict(r) for r in results]}
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(out)
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

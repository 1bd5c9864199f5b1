"""onnxruntime (CPU) against PyTorch for exported restoregen networks.

    OMP_NUM_THREADS=1 python scripts/bench_onnx.py [--size 64] [--repeats 3] [--only TEXT]

For HAT-S x4, DRCT x4 and DLGSANet-Tiny x4 (official configurations, seeded random weights) and the
bundled model: `restoregen export`'s ONNX path (math attention, opset 18, checked in onnxruntime
against PyTorch on two sizes), then the median time of one forward on a size x size input in
PyTorch's default (fast) fp32 path and in onnxruntime's CPU provider, with as many threads as torch
has. Prints one table; `ort / torch` below 1 means onnxruntime is faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    import torch
    from safetensors.torch import save_file

    from restoregen.archs import build
    from restoregen.bench import DLGSANET_LIGHT_X4, DRCT_X4, HAT_S_X4
    from restoregen.inference.export import export_onnx
    from restoregen.inference.loading import default_model_path, load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="input side in pixels (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per path (default 3)")
    parser.add_argument("--only", default="", help="rows whose name contains this text")
    args = parser.parse_args()

    dlgsanet_tiny = {**DLGSANET_LIGHT_X4, "groups": 3}  # Tiny: 3 groups x 3 blocks, dim 48
    cases = [("HAT-S x4", "HAT", HAT_S_X4), ("DRCT x4", "DRCT", DRCT_X4),
             ("DLGSANet-Tiny x4", "DLGSANet", dlgsanet_tiny), ("bundled restoregen-x4", None, None)]
    cases = [case for case in cases if args.only.lower() in case[0].lower()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); input 1x3x{args.size}x{args.size}, "
          f"median of {args.repeats}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, arch, kwargs in cases:
            if arch is None:
                path = default_model_path()
                if path is None:
                    print(f"{name}: not in this installation, skipped")
                    continue
            else:
                torch.manual_seed(0)
                path = Path(folder) / f"{arch}.safetensors"
                save_file({k: v.contiguous() for k, v in build(arch, **kwargs).state_dict().items()}, path)
            model, info = load_model(path)
            start = time.perf_counter()
            result = export_onnx(model, info, Path(folder) / f"{arch or 'bundled'}.onnx")
            export_s = time.perf_counter() - start
            graph, _ = load_model(result.path)
            side = result.fixed_size or args.size  # a fixed graph is timed (and compared) at its own size
            x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
            times = {"torch": [], "ort": []}
            with torch.inference_mode():
                diff = (graph(x) - model(x)).abs().max().item()  # also the warm-up of both
                for _ in range(args.repeats):
                    for key, run in (("torch", model), ("ort", graph)):
                        t = time.perf_counter()
                        run(x)
                        times[key].append(time.perf_counter() - t)
            torch_ms, ort_ms = (statistics.median(times[k]) * 1000 for k in ("torch", "ort"))
            shape = "dynamic" if result.dynamic else f"fixed {result.fixed_size}"
            if result.notes:
                print(f"  {name}: not dynamic: {' | '.join(result.notes)}", flush=True)
            rows.append((name, f"{info.parameters / 1e6:.2f}M", shape, f"{export_s:.0f}", f"{side}x{side}",
                         f"{diff:.1e}", f"{torch_ms:.0f}", f"{ort_ms:.0f}", f"{ort_ms / torch_ms:.2f}"))
            print(f"  {name}: {result.describe()}", flush=True)
    header = ("network", "params", "ONNX H/W", "export s", "input", "max abs diff", "torch ms", "ort ms",
              "ort / torch")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

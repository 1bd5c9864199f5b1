"""Attention backends against the explicit ``math`` reference, measured in one run.

    python scripts/bench_attention.py            # every case
    python scripts/bench_attention.py --only hat  # cases whose name contains "hat"

Each case is timed under every usable backend (median of ``--repeats`` runs after warm-up, which
includes FlexAttention's compilation) and printed as milliseconds and speed-up over ``math``. A case
that compares implementations instead (a dict of variants) is timed under the default backend and
printed as speed-up over its first variant.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
from collections.abc import Callable

import torch

from restoregen.archs import build
from restoregen.attention import (
    WindowAttention,
    attention_backend,
    available_backends,
    dynamic_depthwise_conv,
)
from restoregen.bench import DLGSANET_LIGHT_X4, DRCT_X4, HAT_S_X4, median_seconds


def hat_window_attention(shifted: bool) -> Callable[[], object]:
    """HAT's (shifted) window attention on a 64x64 map: window 16, dim 180, 6 heads (head size 30)."""
    size, window, dim = 64, 16, 180
    module = WindowAttention(dim, window, 6).eval()
    x = torch.randn(1, size, size, dim)
    shift = window // 2 if shifted else 0
    return lambda: module.forward_map(x, shift)


def hat_s_forward() -> Callable[[], object]:
    """A whole HAT-S x4 forward on a 64x64 input."""
    model = build("HAT", **HAT_S_X4).eval()
    x = torch.rand(1, 3, 64, 64)
    return lambda: model(x)


def drct_forward() -> Callable[[], object]:
    """A whole DRCT x4 forward (the released DRCT_SRx4 configuration) on a 64x64 input."""
    model = build("DRCT", **DRCT_X4).eval()
    x = torch.rand(1, 3, 64, 64)
    return lambda: model(x)


def dlgsanet_dynamic_conv() -> dict[str, Callable[[], object]]:
    """DLGSANet-Light x4 forward at 64x64: the explicit unfold dynamic convolution, then ours."""
    from restoregen.archs.dlgsanet import DynamicDWConv

    model = build("DLGSANet", **DLGSANET_LIGHT_X4).eval()
    x = torch.rand(1, 3, 64, 64)

    def forward_with(method: str) -> Callable[[], object]:
        def run():
            for module in model.modules():
                if isinstance(module, DynamicDWConv):
                    module.method = method
            return model(x)
        return run

    return {"unfold": forward_with("unfold"), "shift": forward_with("shift")}


def dynamic_conv_alone() -> dict[str, Callable[[], object]]:
    """One DLGSANet-Light dynamic convolution at 64x64: 48 channels, 8 kernel groups, 7x7 kernels."""
    x = torch.randn(1, 48, 64, 64)
    weight = torch.randn(1, 8, 7, 7, 64, 64)
    return {method: functools.partial(dynamic_depthwise_conv, x, weight, method) for method in ("unfold", "shift")}


CASES: dict[str, Callable[[], Callable[[], object] | dict[str, Callable[[], object]]]] = {
    "hat window attention 64x64 ws16 d180 h6": lambda: hat_window_attention(False),
    "hat shifted window attention 64x64 ws16 d180 h6": lambda: hat_window_attention(True),
    "hat-s x4 forward 64x64": hat_s_forward,
    "drct x4 forward 64x64": drct_forward,
    "dlgsanet-light x4 forward 64x64 dynamic conv": dlgsanet_dynamic_conv,
    "dlgsanet-light dynamic conv alone 64x64 c48 g8 k7": dynamic_conv_alone,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per backend (median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (includes compilation)")
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backends = available_backends()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, fp32, inference mode; median of {args.repeats}")
    print(f"{'case':<50} {'variant':<8} {'ms':>10} {'speed-up':>17}")
    for name, make in CASES.items():
        if args.only not in name:
            continue
        made = make()
        if isinstance(made, dict):  # implementations compared under the default backend
            runs = [(variant, contextlib.nullcontext, fn) for variant, fn in made.items()]
        else:  # one computation under every backend
            runs = [(backend, functools.partial(attention_backend, backend), made) for backend in backends]
        reference = None
        for variant, context, fn in runs:
            with context(), torch.inference_mode():
                seconds = median_seconds(fn, args.repeats, args.warmup)
            reference = reference or (runs[0][0], seconds)
            speedup = f"{reference[1] / seconds:.2f}x vs {reference[0]}"
            print(f"{name:<50} {variant:<8} {seconds * 1e3:>10.1f} {speedup:>17}", flush=True)


if __name__ == "__main__":
    main()

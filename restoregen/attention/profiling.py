"""Which SDPA kernel a computation actually runs, read from the profiler (checked, not assumed)."""

from __future__ import annotations

from collections.abc import Callable

# profiler op names (forward; the backward ops carry the same stem) -> kernel
_SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
    "aten::_scaled_dot_product_attention_math": "math",
}


def sdpa_kernel_name(op: str) -> str | None:
    """The kernel behind a profiler op name, or None for other ops."""
    op = op.removesuffix("_backward")
    return _SDPA_OPS.get(op)


def sdpa_kernels(fn: Callable[[], object]) -> tuple[str, ...]:
    """Run ``fn()`` under the profiler and return the SDPA kernels it used, sorted.

    ``efficient`` and ``cudnn`` take an additive bias; ``math`` is the unfused fallback that stores
    every score; ``flash (cpu)`` is the CPU kernel. An empty result means no SDPA call (FlexAttention,
    Triton or the explicit ``math`` backend).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return tuple(sorted({name for event in prof.events() if (name := sdpa_kernel_name(event.name))}))

"""restoregen's Triton kernels against the explicit ``math`` paths.

They run on CUDA tensors where a GPU is present, else on CPU tensors in Triton's interpreter:
``test_kernels_in_the_triton_interpreter`` re-runs this file in a subprocess with
``TRITON_INTERPRET=1`` (the variable must be set before triton is imported).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from restoregen.attention import (
    WindowAttention,
    attention_backend,
    dynamic_depthwise_conv,
    overlap_relative_position_index,
    overlapping_window_attention,
)
from restoregen.attention.backends import triton_interpreted, triton_runs_on

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RUNS = triton_runs_on(torch.empty(0, device=DEVICE))
needs_kernels = pytest.mark.skipif(not RUNS, reason="needs triton with a CUDA GPU, or TRITON_INTERPRET=1")


@pytest.mark.skipif(triton_interpreted() or torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
                    reason="already interpreted, on a GPU, or no triton")
@pytest.mark.slow  # a second pytest run (about 12 s)
def test_kernels_in_the_triton_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-x"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b16 passed", result.stdout), result.stdout[-2000:]


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max()).item()


def _window_run(module, x, backend, shift, grad=True):
    module.zero_grad()
    x = x.detach().requires_grad_(grad)
    with attention_backend(backend):
        out = module.forward_map(x, shift)
    if not grad:
        return out.detach(), []
    out.backward(torch.cos(torch.arange(out.numel(), device=x.device, dtype=out.dtype)).view_as(out))
    return out.detach(), [x.grad] + [p.grad for p in module.parameters()]


@needs_kernels
@pytest.mark.parametrize("window,size,shift,dim,heads", [  # head sizes 30 and 6
    (4, (8, 12), 2, 60, 2), (4, (8, 12), 0, 60, 2), (7, (14, 21), 3, 60, 2), (8, (16, 16), 4, 12, 2),
    (4, (8, 12), 2, 12, 2), (7, (14, 21), 3, 12, 2), (4, (8, 12), 0, 12, 2), (8, (16, 16), 4, 60, 2)])
def test_window_kernel_matches_math_forward_and_backward(window, size, shift, dim, heads):
    module = WindowAttention(dim, window, heads).to(DEVICE)
    with torch.no_grad():
        module.relative_position_bias_table.normal_()
    x = torch.randn(2, *size, dim, device=DEVICE)
    ref, ref_grads = _window_run(module, x, "math", shift)
    out, grads = _window_run(module, x, "triton", shift)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


@needs_kernels
def test_window_kernel_takes_strided_maps_and_no_bias():
    from restoregen.attention import kernels
    from restoregen.attention.fused import shifted_window_plan

    qkv = torch.randn(2, 8, 8, 3 * 24, device=DEVICE)
    q, k, v = qkv.reshape(2, 64, -1).chunk(3, dim=-1)  # token stride 72, channel stride 1
    plan = shifted_window_plan(8, 8, (4, 4), (0, 0), q.device)
    out = kernels.window_attention(q, k, v, plan.q_index, plan.k_index, 16, 16, 3, 0.5)
    windows = [t.reshape(2, 2, 4, 2, 4, 3, 8).permute(0, 1, 3, 5, 2, 4, 6).reshape(2, 4, 3, 16, 8) for t in (q, k, v)]
    ref = ((windows[0] * 0.5) @ windows[1].transpose(-1, -2)).softmax(-1) @ windows[2]  # b, nW, h, N, d
    ref = ref.reshape(2, 2, 2, 3, 4, 4, 8).permute(0, 1, 4, 2, 5, 3, 6).reshape(2, 64, 24)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize("head_dim", [30, 8])
def test_overlap_kernel_matches_math_forward_and_backward(head_dim):
    q, k, v = (torch.randn(2, 8, 12, 2 * head_dim, device=DEVICE) for _ in range(3))
    table = torch.randn(81, 2, device=DEVICE)
    index = overlap_relative_position_index(4, 6, DEVICE)

    def run(backend):
        leaves = [t.detach().requires_grad_() for t in (q, k, v, table)]
        with attention_backend(backend):
            out = overlapping_window_attention(*leaves, index, 4, 6, 2, 0.3)
        out.backward(torch.ones_like(out))
        return out.detach(), [t.grad for t in leaves]

    ref, ref_grads = run("math")
    out, grads = run("triton")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize("shape", [(2, 4, 5, 6, 2, 3), (1, 12, 9, 11, 2, 7), (1, 48, 20, 17, 8, 7),
                                   (1, 4, 3, 4, 4, 7)])
def test_dynamic_conv_kernel_matches_unfold_forward_and_backward(shape):
    b, c, h, w, groups, k = shape  # last: kernel larger than the map; 48/8: 6 channels per group
    x = torch.randn(b, c, h, w, device=DEVICE, requires_grad=True)
    weight = torch.randn(b, groups, k, k, h, w, device=DEVICE, requires_grad=True)

    def run(method):
        out = dynamic_depthwise_conv(x, weight, method)
        return out.detach(), torch.autograd.grad(out, (x, weight), torch.ones_like(out) + out.detach())

    ref, ref_grads = run("unfold")
    out, grads = run("triton")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@needs_kernels
def test_triton_backend_selects_the_kernels(monkeypatch):
    from restoregen.attention import kernels

    calls = []
    for name in ("window_attention", "dynamic_depthwise_conv"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _n=name, _f=original, **kw: calls.append(_n) or _f(*a, **kw))
    module = WindowAttention(12, 4, 2).to(DEVICE).eval()
    x = torch.randn(1, 8, 8, 12, device=DEVICE)
    weight = torch.randn(1, 2, 3, 3, 8, 8, device=DEVICE)
    with torch.no_grad():
        with attention_backend("triton"):
            module.forward_map(x, 2)
            dynamic_depthwise_conv(x.permute(0, 3, 1, 2), weight)
        with attention_backend("auto"):  # CUDA_AUTO keeps auto off the kernels until they are measured
            module.forward_map(x, 2)
            dynamic_depthwise_conv(x.permute(0, 3, 1, 2), weight)
    assert calls == ["window_attention", "dynamic_depthwise_conv"]


@pytest.mark.cuda
@needs_kernels
@pytest.mark.parametrize("shift", [0, 8])
def test_cuda_window_kernel_bf16_hat_size(shift):
    """HAT's window attention (window 16, dim 180, 6 heads of 30) in bfloat16 against float32 ``math``."""
    module = WindowAttention(180, 16, 6).cuda()
    with torch.no_grad():
        module.relative_position_bias_table.normal_()
    x = torch.randn(1, 64, 64, 180, device="cuda")
    ref, _ = _window_run(module, x, "math", shift, grad=False)
    out, _ = _window_run(module.bfloat16(), x.bfloat16(), "triton", shift, grad=False)
    assert _relative_error(out, ref) <= 1e-2

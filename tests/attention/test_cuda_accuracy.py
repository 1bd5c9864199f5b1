"""On a CUDA GPU: every attention backend against ``math`` in float32, forward and backward.

Relative error (``max|out - ref| / max|ref|``, for outputs and every gradient) at most 1e-2 in
bfloat16 and 1e-3 in float32 with or without TF32; head size 30 (HAT, DRCT, SwinIR), shifted
windows, HAT's overlapping windows and plain biased attention. The reference is ``math`` in float32
with TF32 off. Skipped without CUDA.
"""

from __future__ import annotations

import pytest
import torch

from restoregen.attention import (
    WindowAttention,
    attend,
    attention_backend,
    available_backends,
    overlap_relative_position_index,
    overlapping_window_attention,
    shifted_window_mask,
)

pytestmark = pytest.mark.cuda

BACKENDS = [b for b in available_backends() if b != "math"]
PRECISIONS = {"bf16": (torch.bfloat16, False, 1e-2), "fp32": (torch.float32, False, 1e-3),
              "tf32": (torch.float32, True, 1e-3)}


@pytest.fixture
def tf32():
    """Sets TF32 for matmuls and convolutions (off to start with); restores the settings afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def set_tf32(enabled: bool) -> None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled

    set_tf32(False)
    yield set_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12)).item()


def _assert_close(result, reference, tolerance: float) -> None:
    (out, grads), (ref, ref_grads) = result, reference
    errors = {"output": _relative_error(out, ref)}
    errors.update({f"grad {i}": _relative_error(g, r) for i, (g, r) in enumerate(zip(grads, ref_grads, strict=True))})
    assert max(errors.values()) <= tolerance, errors


def _run(fn, inputs, backend):
    leaves = [t.detach().requires_grad_() for t in inputs]
    with attention_backend(backend):
        out = fn(*leaves)
    grad = torch.cos(torch.arange(out.numel(), device=out.device, dtype=torch.float32)).view_as(out).to(out.dtype)
    out.backward(grad)
    return out.detach(), [t.grad for t in leaves]


def _compare(fn, inputs, backend, precision, tf32):
    dtype, allow_tf32, tolerance = PRECISIONS[precision]
    reference = _run(fn, inputs, "math")
    tf32(allow_tf32)
    _assert_close(_run(fn, [t.to(dtype) for t in inputs], backend), reference, tolerance)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shift", [0, 8])
def test_window_attention(backend, precision, shift, tf32):
    """HAT's (shifted) window attention: window 16, dim 180, 6 heads of 30, on a 48x64 map."""
    module = WindowAttention(180, 16, 6).cuda()
    with torch.no_grad():
        module.relative_position_bias_table.normal_()
    dtype = PRECISIONS[precision][0]
    x = torch.randn(2, 48, 64, 180, device="cuda")
    reference = _run(lambda x: module.forward_map(x, shift), [x], "math")
    reference = (reference[0], reference[1] + [p.grad.clone() for p in module.parameters()])
    module.zero_grad()
    tf32(PRECISIONS[precision][1])
    low = module.to(dtype)
    out, grads = _run(lambda x: low.forward_map(x, shift), [x.to(dtype)], backend)
    _assert_close((out, grads + [p.grad for p in low.parameters()]), reference, PRECISIONS[precision][2])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_overlapping_window_attention(backend, precision, tf32):
    """HAT's OCAB: 16x16 query windows, 24x24 key windows (zero-padded), 6 heads of 30, wrapping index."""
    q, k, v = (torch.randn(2, 32, 48, 180, device="cuda") for _ in range(3))
    table = torch.randn((16 + 24 - 1) ** 2, 6, device="cuda")
    index = overlap_relative_position_index(16, 24, "cuda")

    def fn(q, k, v, table):
        return overlapping_window_attention(q, k, v, table, index, 16, 24, 6, 30**-0.5)

    _compare(fn, [q, k, v, table], backend, precision, tf32)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head_dim", [30, 64])
def test_attend_with_bias_and_shift_mask(backend, precision, head_dim, tf32):
    """``attend`` on windows ``(B, nW, heads, N, d)`` with a ``(heads, N, N)`` bias and the shift mask."""
    q, k, v = (torch.randn(2, 4, 6, 256, head_dim, device="cuda") for _ in range(3))
    bias = torch.randn(6, 256, 256, device="cuda")
    mask = shifted_window_mask(32, 32, 16, 8, "cuda").unsqueeze(1)

    def fn(q, k, v, bias):
        return attend(q, k, v, bias=bias, mask=mask.to(q.dtype), scale=head_dim**-0.5)

    _compare(fn, [q, k, v, bias], backend, precision, tf32)

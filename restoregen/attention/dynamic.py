"""Dynamic local self-attention: depthwise convolution with a different kernel at every pixel.

DLGSANet's multi-head dynamic local self-attention (after "On the Connection between Local
Attention and Dynamic Depth-wise Convolution", Han et al., ICLR 2022) predicts a ``k x k`` kernel
per pixel and per group of channels (a "head") and applies it to the neighbourhood of that pixel.
The official code runs a cupy CUDA kernel; here it is plain PyTorch and runs on every device, with
a fused Triton kernel for CUDA (:mod:`.kernels`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .backends import RecomputedBackward, resolve, triton_runs_on

DYNAMIC_CONV_METHODS = ("shift", "unfold", "triton")


def dynamic_depthwise_conv(x: Tensor, weight: Tensor, method: str | None = None) -> Tensor:
    """Per-pixel depthwise convolution, zero-padded to keep the size (stride 1).

    ``out[b, c, h, w] = sum_ij weight[b, c // (C // G), i, j, h, w] * x[b, c, h + i - p, w + j - p]``
    with ``p = (k - 1) // 2``: channel ``c`` belongs to group ``c // (C // G)`` and all channels of a
    group share its kernels.

    Args:
        x: ``(B, C, H, W)``.
        weight: ``(B, G, k, k, H, W)`` kernels, ``k`` odd and ``C`` a multiple of ``G``.
        method: ``"shift"`` adds the ``k*k`` shifted copies of the zero-padded input, each scaled
            by its kernel tap: nothing larger than the input is materialised, and the backward
            keeps only views. ``"unfold"`` is the explicit im2col computation of the official
            kernel, which materialises ``k*k`` copies of the input; it is the reference the other
            is tested and benchmarked against. ``"triton"`` is one fused kernel (each kernel tap is
            loaded once per block of pixels and applied to every channel of its group; float32
            accumulation; CUDA, or Triton's interpreter); its backward recomputes ``shift``.
            ``None`` follows the attention backend (:func:`.resolve`, operation ``dynamic_conv``):
            ``unfold`` under the reference (``math``), ``triton`` where the Triton kernel is the
            backend that runs, ``shift`` otherwise.
    """
    b, c, height, width = x.shape
    if weight.dim() != 6 or weight.shape[0] != b or weight.shape[-2:] != (height, width):
        raise ValueError(f"dynamic kernels must be (B={b}, G, k, k, H={height}, W={width}), got {tuple(weight.shape)}")
    groups, kh, kw = weight.shape[1:4]
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"dynamic kernels must be square with an odd size, got {kh}x{kw}")
    if c % groups:
        raise ValueError(f"{c} channels cannot be split into {groups} kernel groups")
    if method is None:
        backend = resolve("dynamic_conv", x)
        method = "unfold" if backend.reference else "triton" if backend.fused_kernel else "shift"
    if method not in _METHODS:
        raise ValueError(f"unknown dynamic convolution method {method!r}; choose one of {DYNAMIC_CONV_METHODS}")
    return _METHODS[method](x, weight)


def _unfold_dynamic_conv(x: Tensor, weight: Tensor) -> Tensor:
    """The explicit im2col computation of the official kernel (the reference)."""
    b, c, height, width = x.shape
    groups, kh, kw = weight.shape[1:4]
    columns = F.unfold(x, kh, padding=(kh - 1) // 2).view(b, groups, c // groups, kh * kw, height, width)
    out = (columns * weight.reshape(b, groups, 1, kh * kw, height, width)).sum(3)
    return out.view(b, c, height, width)


def _shift_dynamic_conv(x: Tensor, weight: Tensor) -> Tensor:
    """The sum of the ``k*k`` shifted views of the zero-padded input, each scaled by its tap."""
    b, c, height, width = x.shape
    groups, kh, kw = weight.shape[1:4]
    pad = (kh - 1) // 2
    # contiguous (b, c, h, w) operands keep every tap one vectorised pass (channels-last inputs are ~10x slower)
    padded = F.pad(x.contiguous(), (pad, pad, pad, pad)).view(b, groups, c // groups, height + 2 * pad, width + 2 * pad)
    weight = weight.contiguous()
    # the k*k taps are summed in float32 (bfloat16 sums lose DLGSANet's 1e-2 accuracy, README "GPU")
    out = x.new_zeros(b, groups, c // groups, height, width, dtype=torch.promote_types(x.dtype, torch.float32))
    for i in range(kh):
        for j in range(kw):
            out.addcmul_(padded[..., i:i + height, j:j + width], weight[:, :, i, j].unsqueeze(2))
    return out.view(b, c, height, width).to(x.dtype)


def _triton_dynamic_conv(x: Tensor, weight: Tensor) -> Tensor:
    if not triton_runs_on(x):
        raise ValueError("dynamic convolution method 'triton' needs CUDA tensors (or TRITON_INTERPRET=1)")
    from . import kernels

    if not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return kernels.dynamic_depthwise_conv(x, weight)
    return RecomputedBackward.apply(kernels.dynamic_depthwise_conv,
                                    lambda x, weight: dynamic_depthwise_conv(x, weight, "shift"), x, weight)


_METHODS = {"shift": _shift_dynamic_conv, "unfold": _unfold_dynamic_conv, "triton": _triton_dynamic_conv}

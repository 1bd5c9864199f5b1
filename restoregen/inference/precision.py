"""Reduced-precision inference that stays finite.

``bf16`` runs the network in bfloat16 end to end: weights, activations, relative-position biases
and shift masks (the attention library builds them in the compute dtype), with float32
accumulation inside the matmul, attention and dynamic-convolution kernels.

``fp16`` cannot do the same: float16 tops out at 65504, and the residual stream of trained Swin
networks grows past it layer after layer (SwinIR #103/#180: black images). :func:`fp16_guard`
keeps the weights and the residual stream in float32 and runs every convolution and linear layer
in float16 under autocast, on its input divided by a per-call scale ``s``::

    s = max(1, max|x| / INPUT_LIMIT, max|x| * |W|_1 / OUTPUT_LIMIT)     (|W|_1: largest row L1 norm)
    y = s * (W (x / s)) + b                                              (W (x / s) in float16)

``|W (x/s)| <= max|x/s| * |W|_1 <= OUTPUT_LIMIT``, so neither the float16 input nor the float16
output can overflow; layers whose inputs are small (after a LayerNorm) get ``s = 1``. Attention
scores and softmax run in the kernels' float32 accumulators; everything between the layers stays
float32 under autocast.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

INPUT_LIMIT = 2.0**14  # largest |x / s| fed to a float16 layer
OUTPUT_LIMIT = 2.0**14  # bound on |W (x / s)|, a quarter of float16's 65504

_GUARDED = (nn.Conv2d, nn.Linear)


def _row_norm(module: nn.Module) -> Tensor:
    """The largest L1 norm of a row of the weight (per output channel), cached per weight version."""
    weight = module.weight
    key = (weight.data_ptr(), weight._version)
    cached = module.__dict__.get("_fp16_guard_norm")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            norm = weight.detach().float().abs().flatten(1).sum(1).amax()
        cached = module.__dict__["_fp16_guard_norm"] = (key, norm)
    return cached[1]


def _scale_input(module: nn.Module, args: tuple) -> tuple | None:
    x = args[0]
    if not (torch.is_autocast_enabled(x.device.type) and torch.get_autocast_dtype(x.device.type) == torch.float16):
        module.__dict__["_fp16_guard_scale"] = None
        return None
    peak = x.detach().abs().amax().float()
    scale = torch.clamp(torch.maximum(peak / INPUT_LIMIT, peak * _row_norm(module) / OUTPUT_LIMIT), min=1.0)
    module.__dict__["_fp16_guard_scale"] = scale
    return (x / scale.to(x.dtype), *args[1:])


def _unscale_output(module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
    scale = module.__dict__.pop("_fp16_guard_scale", None)
    if scale is None:
        return None
    out = out.float()
    if module.bias is None:
        return out * scale
    bias = module.bias.float()
    if isinstance(module, nn.Conv2d):
        bias = bias.view(-1, *([1] * (out.dim() - 2)))
    return (out - bias) * scale + bias


def fp16_guard(model: nn.Module) -> nn.Module:
    """Install the float16 range guard (module docstring) on every convolution and linear layer.

    It acts only under ``torch.autocast(..., dtype=torch.float16)`` (elsewhere the hooks return
    at once) and adds no parameters or buffers. Keep the model's weights in float32. Idempotent.
    """
    for module in model.modules():
        if isinstance(module, _GUARDED) and not module.__dict__.get("_fp16_guarded"):
            module.register_forward_pre_hook(_scale_input)
            module.register_forward_hook(_unscale_output)
            module.__dict__["_fp16_guarded"] = True
    return model


def precision_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """What a forward pass at ``dtype`` runs under: autocast for float16 (with :func:`fp16_guard`), else nothing."""
    if dtype == torch.float16:
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def weight_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the weights are kept in for a compute dtype: float32 for float16 (guarded), else itself."""
    return torch.float32 if dtype == torch.float16 else dtype


__all__ = ["INPUT_LIMIT", "OUTPUT_LIMIT", "fp16_guard", "precision_context", "weight_dtype"]

"""Linear layers with their epilogue (bias, activation, residual add) fused into the matrix product.

On the CPU, ``F.linear`` writes the broadcast bias into the output and accumulates the product
onto it, and an activation or residual add is one more pass over the output each. oneDNN's linear
(``mkldnn::_linear_pointwise``) applies bias, activation or add to each tile of the product while
it is in cache. It has no autograd, so it serves inference only.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backends import resolve


def _onednn_post_op(activation: nn.Module | None) -> tuple[str, list[float], str] | None:
    """oneDNN's name, scalars and algorithm for an activation module (None: no such post-op)."""
    if activation is None:
        return "none", [], ""
    if isinstance(activation, nn.GELU):
        return "gelu", [], "tanh" if activation.approximate == "tanh" else "none"
    if isinstance(activation, nn.LeakyReLU):
        return "leaky_relu", [activation.negative_slope], ""
    if isinstance(activation, nn.ReLU):
        return "relu", [], ""
    return None


@functools.cache
def onednn_linear_available() -> bool:
    """Whether this torch has oneDNN's linear with fused post-ops (``mkldnn::_linear_pointwise``)
    and it computes what the plain operators do."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        generator = torch.Generator().manual_seed(0)
        x, residual = torch.randn(2, 5, 8, generator=generator), torch.randn(2, 5, 6, generator=generator)
        weight, bias = torch.randn(6, 8, generator=generator), torch.randn(6, generator=generator)
        with torch.no_grad():
            plain = F.linear(x, weight, bias)
            return (torch.allclose(op(x, weight, bias, "gelu", [], "none"), F.gelu(plain), atol=1e-5)
                    and torch.allclose(op.binary(x, residual, weight, bias, "add"), plain + residual, atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


def fuses_linear_epilogues(x: Tensor) -> bool:
    """Whether :func:`linear_epilogue` fuses for ``x``: float32 inference on the CPU, on a backend
    that fuses epilogues (not the reference ``math``, which keeps the official operator order),
    outside torch.compile (which fuses by itself)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling() and resolve("window", x).fuses_epilogues
            and onednn_linear_available())


class LinearWeights(NamedTuple):
    """A linear map held as tensors (``weight``: ``(out, in)``), for :func:`linear_epilogue`."""

    weight: Tensor
    bias: Tensor | None = None


def linear_epilogue(x: Tensor, layer: nn.Linear | LinearWeights, activation: nn.Module | None = None,
                    residual: Tensor | None = None) -> Tensor:
    """``activation(layer(x))`` or ``residual + layer(x)``.

    Where :func:`fuses_linear_epilogues`, one oneDNN call: the bias, the activation or the residual
    add are applied to the product's tiles while they are in cache, instead of in passes of their
    own over the output. Elsewhere, the plain operators.
    """
    if activation is not None and residual is not None:
        raise ValueError("linear_epilogue takes an activation or a residual, not both")
    post_op = _onednn_post_op(activation)
    out_shape = (*x.shape[:-1], layer.weight.shape[0])
    if (post_op is not None and fuses_linear_epilogues(x)
            and (residual is None or (residual.shape == out_shape and residual.dtype == x.dtype))):
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, layer.weight, layer.bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, *post_op)
    out = F.linear(x, layer.weight, layer.bias)
    if activation is not None:
        out = activation(out)
    return out if residual is None else residual + out


__all__ = ["LinearWeights", "fuses_linear_epilogues", "linear_epilogue", "onednn_linear_available"]

"""Channel ("transposed") self-attention and its test-time local converter (TLC).

Restormer's MDTA and DLGSANet's sparse global self-attention attend across channels instead of
pixels: per head, the ``c x c`` scores are the cosine similarities of whole channel maps, scaled
by a learned temperature. MDTA takes their softmax; DLGSANet's sparse variant takes their ReLU,
which zeroes the negative scores.

TLC (Chu et al., "Improving Image Restoration by Revisiting Global Information Aggregation",
ECCV 2022) runs the attention at test time on overlapping ``kernel x kernel`` crops, the size it
was trained on, and averages the overlaps.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .backends import attend

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf) GELU, as nn.GELU()
    "sigmoid": torch.sigmoid,
    "identity": lambda scores: scores,
}
CHANNEL_ATTENTION_ACTIVATIONS = ("softmax", *_ACTIVATIONS)


def channel_attention(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor | float,
                      activation: str = "softmax") -> Tensor:
    """``act(normalize(q) normalize(k)^T * temperature) v`` over channel maps.

    Args:
        q, k, v: ``(*batch, heads, c, N)``: ``c`` channels per head, each a map of ``N`` pixels.
        temperature: broadcastable to the ``(*batch, heads, c, c)`` scores (``(heads, 1, 1)``).
        activation: ``"softmax"`` (MDTA; runs through :func:`attend`, so every attention backend
            applies) or ``"relu"`` (DLGSANet's sparse global self-attention), ``"gelu"``,
            ``"sigmoid"``, ``"identity"`` (explicit matmuls).
    Returns ``(*batch, heads, c, N)``.
    """
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    if activation == "softmax":
        return attend(q * temperature, k, v, scale=1.0)
    try:
        act = _ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(f"unknown channel-attention activation {activation!r}; "
                         f"choose one of {CHANNEL_ATTENTION_ACTIVATIONS}") from None
    return act((q @ k.transpose(-2, -1)) * temperature) @ v


def channel_self_attention(qkv: Tensor, num_heads: int, temperature: Tensor | float, activation: str = "softmax",
                           tlc_kernel: int | None = None) -> Tensor:
    """Channel self-attention of a fused ``(B, 3C, H, W)`` q/k/v map; returns ``(B, C, H, W)``.

    With ``tlc_kernel`` the attention runs on the overlapping crops of :func:`tlc_partition`
    (every sample of the batch separately) and the results are averaged by :func:`tlc_merge`.
    """
    height, width = qkv.shape[-2:]
    if tlc_kernel is not None:
        qkv = tlc_partition(qkv, tlc_kernel)
    n, channels, h, w = qkv.shape
    q, k, v = (t.reshape(n, num_heads, -1, h * w) for t in qkv.chunk(3, dim=1))
    out = channel_attention(q, k, v, temperature, activation).reshape(n, channels // 3, h, w)
    return tlc_merge(out, tlc_kernel, height, width) if tlc_kernel is not None else out


def _starts(length: int, kernel: int) -> tuple[int, ...]:
    """Crop starts along one side: evenly spread, the last one flush with the end (official TLC)."""
    count = (length - 1) // kernel + 1
    step = kernel if count == 1 else math.ceil((length - kernel) / (count - 1) - 1e-8)
    starts, start = [], 0
    while start + kernel < length:
        starts.append(start)
        start += step
    return (*starts, length - kernel)


@functools.lru_cache(maxsize=64)
def tlc_grid(height: int, width: int, kernel: int) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]]:
    """TLC crops of a ``height x width`` map: the crop size ``(min(height, kernel), min(width, kernel))``
    and the top-left corners, row-major (the official ``grids`` order)."""
    kh, kw = min(height, kernel), min(width, kernel)
    rows, cols = _starts(height, kh), _starts(width, kw)
    return (kh, kw), tuple((i, j) for i in rows for j in cols)


def tlc_partition(x: Tensor, kernel: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B * n, C, kh, kw)``: the ``n`` TLC crops of every sample, sample-major."""
    (kh, kw), corners = tlc_grid(x.shape[-2], x.shape[-1], kernel)
    crops = torch.stack([x[..., i:i + kh, j:j + kw] for i, j in corners], dim=1)
    return crops.flatten(0, 1)


def tlc_merge(crops: Tensor, kernel: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`tlc_partition`: paste the crops back and average where they overlap."""
    (kh, kw), corners = tlc_grid(height, width, kernel)
    crops = crops.view(-1, len(corners), *crops.shape[1:])
    out = crops.new_zeros(crops.shape[0], crops.shape[2], height, width)
    count = crops.new_zeros(1, 1, height, width)
    for n, (i, j) in enumerate(corners):
        out[..., i:i + kh, j:j + kw] += crops[:, n]
        count[..., i:i + kh, j:j + kw] += 1
    return out / count

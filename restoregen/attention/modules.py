"""Attention modules whose parameter names keep the official state-dict names."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backends import attend
from .windows import Pair, relative_position_bias, relative_position_index, to_pair


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(..., N, heads*d)`` -> ``(..., heads, N, d)`` (a view)."""
    *lead, n, c = x.shape
    return x.view(*lead, n, num_heads, c // num_heads).transpose(-3, -2)


def merge_heads(x: Tensor) -> Tensor:
    """``(..., heads, N, d)`` -> ``(..., N, heads*d)``."""
    *lead, h, n, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, n, h * d)


def qkv_heads(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split a fused ``(..., N, 3*C)`` projection into q, k, v of shape ``(..., heads, N, C/heads)``."""
    return tuple(split_heads(t, num_heads) for t in qkv.chunk(3, dim=-1))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative-position bias (Swin).

    Parameters: ``relative_position_bias_table``, ``qkv``, ``proj``; with ``store_index=True`` also
    the persistent ``relative_position_index`` buffer that SwinIR-style checkpoints (DRCT) carry.
    """

    def __init__(self, dim: int, window_size: int | Pair, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 store_index: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = to_pair(window_size)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        if store_index:
            index = relative_position_index(self.window_size, torch.get_default_device())
            self.register_buffer("relative_position_index", index.clone())
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def bias(self, index: Tensor | None = None) -> Tensor:
        """The ``(heads, N, N)`` relative-position bias."""
        if index is None:
            index = getattr(self, "relative_position_index", None)
        if index is None:
            index = relative_position_index(self.window_size, self.relative_position_bias_table.device)
        return relative_position_bias(self.relative_position_bias_table, index)

    def forward(self, windows: Tensor, mask: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """``windows``: ``(B, nW, N, C)``; ``mask``: additive ``(nW, N, N)``; returns ``(B, nW, N, C)``."""
        q, k, v = qkv_heads(self.qkv(windows), self.num_heads)
        out = attend(q, k, v, bias=self.bias(index), mask=None if mask is None else mask.unsqueeze(1),
                     scale=self.scale, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(merge_heads(out)))

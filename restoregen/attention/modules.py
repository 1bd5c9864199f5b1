"""Attention modules whose parameter names keep the official state-dict names."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import fused
from .backends import Backend, attend, merge_heads, qkv_heads, resolve, split_heads
from .epilogue import linear_epilogue
from .windows import (
    Pair,
    WindowLayout,
    cached_relative_position_bias,
    map_windows,
    relative_position_index,
    shifted_window_mask,
    to_pair,
    window_layout,
)


class WindowAttentionCore(nn.Module):
    """Multi-head attention inside windows with Swin's learned relative-position bias, without
    projections: ``q``, ``k``, ``v`` come in already projected (StyleSwin projects once and splits
    the channels between two of these, one on regular and one on shifted windows).

    Parameters: ``relative_position_bias_table``; with ``store_index=True`` also the persistent
    ``relative_position_index`` buffer that some checkpoints carry (DRCT, StyleSwin).
    """

    def __init__(self, dim: int, window_size: int | Pair, num_heads: int, qk_scale: float | None = None,
                 attn_drop: float = 0.0, store_index: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = to_pair(window_size)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.attn_drop = attn_drop
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        if store_index:
            index = relative_position_index(self.window_size, torch.get_default_device())
            self.register_buffer("relative_position_index", index.clone())
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def bias(self, index: Tensor | None = None, mask: Tensor | None = None, tokens: Tensor | None = None) -> Tensor:
        """The ``(heads, N, N)`` relative-position bias, plus an ``(N, N)`` ``mask`` if given; with
        ``tokens``, among those positions of the window only.

        Without autograd (inference) the result is cached per mask until the table changes (not on
        the ``math`` backend, which gathers it in every call as the official code does).
        """
        return cached_relative_position_bias(self, self.relative_position_bias_table, self._index(index), mask, tokens)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                index: Tensor | None = None) -> Tensor:
        """``q``, ``k``, ``v``: windows ``(B, nW, N, C)``; ``mask``: additive ``(nW, N, N)``; returns
        ``(B, nW, N, C)`` with the heads merged again."""
        q, k, v = (split_heads(t, self.num_heads) for t in (q, k, v))
        out = attend(q, k, v, bias=self.bias(index), mask=None if mask is None else mask.unsqueeze(1),
                     scale=self.scale, dropout_p=self.attn_drop if self.training else 0.0)
        return merge_heads(out)

    def _index(self, index: Tensor | None) -> Tensor:
        """The relative-position index: ``index`` if given, else the stored buffer, else the cached one."""
        if index is None:
            index = getattr(self, "relative_position_index", None)
        if index is None:
            index = relative_position_index(self.window_size, self.relative_position_bias_table.device)
        return index

    def forward_map(self, qkv: Tensor, shift: int = 0, mask: Tensor | None = None,
                    index: Tensor | None = None) -> Tensor:
        """(Shifted) window attention of a channels-last map.

        ``qkv``: ``(B, H, W, 3C)``, the projected q, k, v side by side, H and W multiples of the
        window; returns ``(B, H, W, C)``.

        The reference backend (``math``) follows the official data movement: cyclic shift,
        partition, one ``(nW, N, N)`` mask (``mask`` if given), merge, shift back. ``sdpa`` gathers
        the windows with a cached :class:`WindowLayout` and attends group by group, each group with
        its bias and ``(N, N)`` mask combined once, so nothing grows with windows x heads x N².
        ``flex`` attends the gathered windows at once, the bias gathered from the table in the kernel
        and the shift mask a block mask; ``triton`` runs one kernel on the map (see :mod:`.fused`).
        The fast paths use Swin's standard shift mask (the official one; a ``mask`` argument is not read).
        """
        backend = self._backend(qkv)
        if backend.reference:
            mask = self._official_mask(qkv, shift, mask)

            def official(windows: Tensor) -> Tensor:
                return WindowAttentionCore.forward(self, *windows.chunk(3, dim=-1), mask, index)

            return map_windows(official, qkv, self.window_size, shift)
        if backend.fused_kernel:
            return self._attend_map_triton(qkv, shift, index)
        layout = self._layout(qkv, shift, backend)
        return layout.merge(self._attend_layout(layout.partition(qkv), layout, shift, index, backend))

    def _backend(self, x: Tensor) -> Backend:
        """The window-attention backend for ``x``, with attention dropout while training."""
        return resolve("window", x, dropout=self.training and self.attn_drop > 0)

    def _layout(self, x: Tensor, shift: int, backend: Backend) -> WindowLayout:
        """The cached layout; with split shift regions where the backend attends them apart (the
        fused kernels' plans index tokens in row-major window order)."""
        return window_layout(x.shape[1], x.shape[2], self.window_size, (shift, shift), x.device, x.dtype,
                             split_regions=backend.splits_shift_regions)

    def _official_mask(self, x: Tensor, shift: int, mask: Tensor | None) -> Tensor | None:
        if not shift:
            return None
        return mask if mask is not None else shifted_window_mask(x.shape[1], x.shape[2], self.window_size, shift,
                                                                 x.device, x.dtype)

    def _attend_layout(self, qkv: Tensor, layout: WindowLayout, shift: int, index: Tensor | None,
                       backend: Backend) -> Tensor:
        """Attention of fused ``(B, nW, N, 3C)`` windows in ``layout`` order -> ``(B, nW, N, C)``."""
        if backend.block_sparse:
            plan = fused.shifted_window_plan(layout.height, layout.width, layout.window, (shift, shift), qkv.device)
            q, k, v = (fused.flex_heads(t, self.num_heads) for t in qkv.chunk(3, dim=-1))
            out = fused.flex_window_attention(q, k, v, self.relative_position_bias_table, self._index(index),
                                              self.scale, plan)
            return fused.flex_merge(out, plan.windows)
        dropout_p = self.attn_drop if self.training else 0.0
        batch, _, tokens, channels = qkv.shape
        outs = []
        for g in layout.groups:  # a group with split regions attends each region as its own sequence
            regions = g.regions(tokens)
            q, k, v = qkv_heads(qkv[:, g.start:g.stop].reshape(batch, -1, tokens // regions, channels), self.num_heads)
            out = attend(q, k, v, bias=self.bias(index, g.mask, g.tokens), scale=self.scale, dropout_p=dropout_p,
                         backend=backend.name)
            outs.append(merge_heads(out).reshape(batch, g.stop - g.start, tokens, -1))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _attend_map_triton(self, qkv: Tensor, shift: int, index: Tensor | None) -> Tensor:
        """The fused Triton kernel on a ``(B, H, W, 3C)`` map -> ``(B, H, W, C)``."""
        b, height, width, _ = qkv.shape
        plan = fused.shifted_window_plan(height, width, self.window_size, (shift, shift), qkv.device)
        q, k, v = qkv.reshape(b, height * width, -1).chunk(3, dim=-1)
        out = fused.triton_window_attention(q, k, v, plan, self.bias(index), self.num_heads, self.scale)
        return out.view(b, height, width, -1)


class WindowAttention(WindowAttentionCore):
    """Multi-head self-attention inside windows with a learned relative-position bias (Swin).

    Parameters: ``relative_position_bias_table``, ``qkv``, ``proj``; with ``store_index=True`` also
    the persistent ``relative_position_index`` buffer that SwinIR-style checkpoints (DRCT) carry.
    """

    def __init__(self, dim: int, window_size: int | Pair, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 store_index: bool = False) -> None:
        super().__init__(dim, window_size, num_heads, qk_scale=qk_scale, attn_drop=attn_drop,
                         store_index=store_index)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, windows: Tensor, mask: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """``windows``: ``(B, nW, N, C)``; ``mask``: additive ``(nW, N, N)``; returns ``(B, nW, N, C)``."""
        q, k, v = self.qkv(windows).chunk(3, dim=-1)
        return self.proj_drop(self.proj(super().forward(q, k, v, mask, index)))

    def forward_map(self, x: Tensor, shift: int = 0, mask: Tensor | None = None, index: Tensor | None = None,
                    residual: Tensor | None = None) -> Tensor:
        """(Shifted) window self-attention of a channels-last map ``(B, H, W, C)`` (see the core's),
        plus ``residual`` if given.

        Where the backend gathers windows (``sdpa``, ``flex``) they are gathered before the qkv
        projection (a third of the bytes) and merged before the output projection, which then adds
        ``residual`` in its epilogue (:func:`.linear_epilogue`); the Triton kernel reads the
        projected map directly.
        """
        backend = self._backend(x)
        if backend.reference:
            mask = self._official_mask(x, shift, mask)
            out = map_windows(lambda windows: self(windows, mask, index), x, self.window_size, shift)
            return out if residual is None else residual + out
        if backend.fused_kernel:
            return self._project(self._attend_map_triton(self.qkv(x), shift, index), residual)
        layout = self._layout(x, shift, backend)
        out = self._attend_layout(linear_epilogue(layout.partition(x), self.qkv), layout, shift, index, backend)
        return self._project(layout.merge(out), residual)

    def _project(self, x: Tensor, residual: Tensor | None) -> Tensor:
        """``proj_drop(proj(x))``, plus ``residual`` if given."""
        if self.training and self.proj_drop.p > 0:
            out = self.proj_drop(self.proj(x))
            return out if residual is None else residual + out
        return linear_epilogue(x, self.proj, residual=residual)

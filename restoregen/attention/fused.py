"""Window attention on the fused paths: FlexAttention with the bias gathered from its table, and
the Triton kernel.

Both see windowed attention as one flat problem described by a :class:`WindowPlan`: window ``w``'s
queries are the ``N`` positions ``w*N ...`` of a window-major query sequence, its keys the ``M``
positions ``w*M ...`` of the key sequence, and a query attends exactly the keys of its own window
(and of its own shift region). Swin's (shifted) windows and HAT's overlapping windows are two plans.

- ``flex``: the ``score_mod`` adds ``table[index[q % N, k % M], head]`` (the relative-position bias,
  read from the learned table inside the kernel) and the ``block_mask`` keeps only the blocks of
  each query's own window, so neither a dense bias nor a mask is built. One compiled kernel per
  shape: the ``score_mod`` and ``mask_mod`` always have the same code, only their tensors change.
- ``triton``: :func:`restoregen.attention.kernels.window_attention` reads queries, keys and values
  straight from the map through the plan's token indices and writes the output back to the map.

On the CPU, where FlexAttention has no backward, and for the Triton kernel (forward only), the
gradient is recomputed from the dense equivalent (:func:`dense_window_attention`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .backends import RecomputedBackward, attend, merge_heads, resolve, run_flex, split_heads
from .windows import (
    _no_inference,
    overlapping_window_tokens,
    overlapping_windows,
    relative_position_bias,
    window_layout,
    window_merge,
    window_partition,
)

FLEX_BLOCK = 128


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Windowed attention as one flat problem (see the module docstring).

    ``q_index``/``k_index``: the map token of every query/key position (int32; -1 = a zero key,
    HAT's padding). ``q_labels``/``k_labels``: shift regions (int32) or None; a query attends only
    keys of its own region (Swin's -100 mask, exactly 0 after the softmax in float32).
    """

    windows: int
    queries: int
    keys: int
    q_index: Tensor
    k_index: Tensor
    q_labels: Tensor | None = None
    k_labels: Tensor | None = None

    @functools.cached_property
    def block_mask(self):
        """FlexAttention block mask: the blocks of each query's own window, fully computed where a
        block pair lies in one window and one region, else masked by :meth:`mask_mod`."""
        from torch.nn.attention.flex_attention import BlockMask

        n, m = self.queries, self.keys
        device = self.q_index.device
        q_window, k_window = (torch.arange(self.windows * size, device=device) // size for size in (n, m))
        zero_q, zero_k = torch.zeros_like(q_window), torch.zeros_like(k_window)
        q_label = zero_q if self.q_labels is None else self.q_labels.long()
        k_label = zero_k if self.k_labels is None else self.k_labels.long()
        (qw_lo, qw_hi), (kw_lo, kw_hi) = _block_range(q_window), _block_range(k_window)
        (ql_lo, ql_hi), (kl_lo, kl_hi) = _block_range(q_label), _block_range(k_label)
        needed = (qw_hi[:, None] >= kw_lo[None, :]) & (qw_lo[:, None] <= kw_hi[None, :])
        uniform_q = (qw_lo == qw_hi) & (ql_lo == ql_hi)
        uniform_k = (kw_lo == kw_hi) & (kl_lo == kl_hi)
        full = (uniform_q[:, None] & uniform_k[None, :] & (qw_lo[:, None] == kw_lo[None, :])
                & (ql_lo[:, None] == kl_lo[None, :]))
        partial = needed & ~full
        mask_mod = _window_mask_mod(n, m, q_label.int(), k_label.int())
        return BlockMask.from_kv_blocks(*_to_indices(partial), *_to_indices(full), BLOCK_SIZE=FLEX_BLOCK,
                                        mask_mod=mask_mod, seq_lengths=(self.windows * n, self.windows * m))

    def dense_mask(self) -> Tensor | None:
        """Boolean ``(nW, N, M)`` mask (True = attend) of the plan's regions, or None."""
        if self.q_labels is None:
            return None
        return self.q_labels.view(self.windows, self.queries, 1) == self.k_labels.view(self.windows, 1, self.keys)


def _block_range(values: Tensor) -> tuple[Tensor, Tensor]:
    """(min, max) of every block of :data:`FLEX_BLOCK` consecutive values (the last block padded with its end)."""
    pad = -values.numel() % FLEX_BLOCK
    blocks = torch.cat([values, values[-1:].expand(pad)]).view(-1, FLEX_BLOCK)
    return blocks.amin(1), blocks.amax(1)


def _to_indices(blocks: Tensor) -> tuple[Tensor, Tensor]:
    counts = blocks.sum(-1, dtype=torch.int32)
    indices = torch.argsort(blocks.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
    return counts[None, None], indices[None, None]


def _window_mask_mod(n: int, m: int, q_label: Tensor, k_label: Tensor):
    def mask_mod(b, h, q_idx, kv_idx):
        return (q_idx // n == kv_idx // m) & (q_label[q_idx] == k_label[kv_idx])

    return mask_mod


def _table_score_mod(table: Tensor, index: Tensor, n: int, m: int):
    def score_mod(score, b, h, q_idx, kv_idx):
        return score + table[index[q_idx % n, kv_idx % m], h]

    return score_mod


@functools.lru_cache(maxsize=64)
@_no_inference
def shifted_window_plan(height: int, width: int, window: tuple[int, int], shift: tuple[int, int],
                        device: torch.device) -> WindowPlan:
    """Swin's (shifted) windows, in the order of the cached :func:`window_layout`."""
    layout = window_layout(height, width, window, shift, device)
    tokens = layout.tokens_per_window
    order = layout.order.int()
    labels = None if layout.labels is None else layout.labels.int()
    return WindowPlan(order.numel() // tokens, tokens, tokens, order, order, labels, labels)


@functools.lru_cache(maxsize=64)
@_no_inference
def overlapping_window_plan(height: int, width: int, window: int, overlap_window: int,
                            device: torch.device) -> WindowPlan:
    """HAT's overlapping cross-attention: window-partitioned queries, zero-padded overlapping keys."""
    layout = window_layout(height, width, (window, window), (0, 0), device)
    keys = overlapping_window_tokens(height, width, window, overlap_window, device).int()
    return WindowPlan(layout.order.numel() // window**2, window**2, overlap_window**2, layout.order.int(), keys)


# ---------------------------------------------------------------------------------------------


def dense_window_attention(q: Tensor, k: Tensor, v: Tensor, table: Tensor, index: Tensor, scale: float,
                           plan: WindowPlan, backend: str = "sdpa") -> Tensor:
    """The flat problem computed window by window with a dense ``(heads, N, M)`` bias.

    ``q``: ``(B, heads, nW*N, d)``, ``k``, ``v``: ``(B, heads, nW*M, d)``, window-major.
    """
    b, heads, _, d = q.shape
    qw = q.reshape(b, heads, plan.windows, plan.queries, d)
    kw, vw = (t.reshape(b, heads, plan.windows, plan.keys, t.shape[-1]) for t in (k, v))
    bias = relative_position_bias(table, index)[:, None]  # heads, 1, N, M
    out = attend(qw, kw, vw, bias=bias, mask=plan.dense_mask(), scale=scale, backend=backend)
    return out.reshape(b, heads, plan.windows * plan.queries, v.shape[-1])


def flex_window_attention(q: Tensor, k: Tensor, v: Tensor, table: Tensor, index: Tensor, scale: float,
                          plan: WindowPlan) -> Tensor:
    """FlexAttention on the flat problem (shapes as :func:`dense_window_attention`), the bias
    ``table[index]`` gathered inside the ``score_mod``; ``index`` may hold negative entries, which
    wrap around the table (HAT's overlap index)."""
    wrapped = index.remainder(table.shape[0])

    def forward(q, k, v, table):
        return run_flex(q, k, v, scale, _table_score_mod(table, wrapped, plan.queries, plan.keys), plan.block_mask)

    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, table))
    if needs_grad and q.device.type == "cpu":  # torch has no FlexAttention backward on the CPU
        return RecomputedBackward.apply(
            forward, lambda q, k, v, table: dense_window_attention(q, k, v, table, index, scale, plan), q, k, v, table)
    return forward(q, k, v, table)


def triton_window_attention(q: Tensor, k: Tensor, v: Tensor, plan: WindowPlan, bias: Tensor | None, num_heads: int,
                            scale: float) -> Tensor:
    """The Triton kernel on token-major ``(B, L, C)`` maps; the backward recomputes the dense path."""
    from . import kernels

    bias = None if bias is None else bias.contiguous()

    def forward(q, k, v, bias):
        return kernels.window_attention(q, k, v, plan.q_index, plan.k_index, plan.queries, plan.keys, num_heads,
                                        scale, bias, plan.q_labels, plan.k_labels)

    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, bias))):
        return forward(q, k, v, bias)
    return RecomputedBackward.apply(forward, lambda *t: _gathered_attention(*t, plan, num_heads, scale), q, k, v, bias)


def _gathered_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, plan: WindowPlan, num_heads: int,
                        scale: float) -> Tensor:
    """What the Triton kernel computes, with gathers and ``sdpa`` (its differentiable reference)."""
    b, length, channels = q.shape

    def gather(t: Tensor, index: Tensor, size: int) -> Tensor:
        padded = F.pad(t, (0, 0, 0, 1))  # token -1 -> the appended zero token
        return split_heads(padded[:, index.long()].view(b, plan.windows, size, -1), num_heads)

    qw = gather(q, plan.q_index, plan.queries)
    kw, vw = gather(k, plan.k_index, plan.keys), gather(v, plan.k_index, plan.keys)
    mask = plan.dense_mask()
    mask = None if mask is None else torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, -100.0)
    out = attend(qw, kw, vw, bias=bias, mask=None if mask is None else mask[:, None], scale=scale, backend="sdpa")
    out = merge_heads(out).reshape(b, -1, v.shape[-1])
    return out.new_zeros(b, length, v.shape[-1]).index_copy(1, plan.q_index.long(), out)


# ---------------------------------------------------------------------------------------------


def flex_heads(windows: Tensor, num_heads: int) -> Tensor:
    """Windows ``(B, nW, N, C)`` -> ``(B, heads, nW*N, C/heads)``, the flat layout FlexAttention takes (a view)."""
    b, nw, n, c = windows.shape
    return windows.reshape(b, nw * n, num_heads, c // num_heads).transpose(1, 2)


def flex_merge(out: Tensor, windows: int) -> Tensor:
    """Inverse of :func:`flex_heads` on FlexAttention's output: ``(B, heads, nW*N, d)`` -> ``(B, nW, N, heads*d)``."""
    b, heads, length, d = out.shape
    return out.transpose(1, 2).reshape(b, windows, length // windows, heads * d)


def overlapping_window_attention(q: Tensor, k: Tensor, v: Tensor, table: Tensor, index: Tensor, window: int,
                                 overlap_window: int, num_heads: int, scale: float,
                                 bias: Tensor | None = None) -> Tensor:
    """HAT's overlapping cross-attention on channels-last maps ``(B, H, W, C)`` -> ``(B, H, W, C)``.

    Queries attend in ``window x window`` windows, keys and values come from the zero-padded
    ``overlap_window`` region around each window (:func:`overlapping_windows`), with the bias
    ``table[index]`` (``index`` as :func:`overlap_relative_position_index`). ``math`` and ``sdpa``
    follow the official computation (unfold, dense bias); ``flex`` and ``triton`` use the
    :func:`overlapping_window_plan`. ``bias``, if given, is ``table[index]`` gathered beforehand
    (:func:`cached_relative_position_bias`).
    """
    b, height, width, channels = q.shape
    backend = resolve("overlapping", q)
    if bias is None:
        bias = relative_position_bias(table, index)
    if backend.fused_kernel or backend.block_sparse:
        plan = overlapping_window_plan(height, width, window, overlap_window, q.device)
    if backend.fused_kernel:
        flat = [t.reshape(b, height * width, t.shape[-1]) for t in (q, k, v)]
        return triton_window_attention(*flat, plan, bias, num_heads, scale).view(b, height, width, -1)
    qw = window_partition(q, window)
    kw, vw = (overlapping_windows(t, window, overlap_window) for t in (k, v))
    if backend.block_sparse:
        out = flex_window_attention(*(flex_heads(t, num_heads) for t in (qw, kw, vw)), table, index, scale, plan)
        return window_merge(flex_merge(out, plan.windows), window, height, width)
    out = attend(*(split_heads(t, num_heads) for t in (qw, kw, vw)), bias=bias, scale=scale, backend=backend.name)
    return window_merge(merge_heads(out), window, height, width)


__all__ = ["WindowPlan", "dense_window_attention", "flex_heads", "flex_merge", "flex_window_attention",
           "overlapping_window_attention", "overlapping_window_plan", "shifted_window_plan",
           "triton_window_attention"]

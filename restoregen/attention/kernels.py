"""restoregen's Triton kernels (imported lazily: importing this module imports triton).

- :func:`window_attention`: windowed softmax attention in one kernel. Each program gathers a block
  of one window's queries straight from the feature map (partition), streams that window's keys and
  values (zero keys where a window reaches past the map, as HAT's overlapping windows do), adds the
  relative-position bias and the shift mask, runs an online softmax and scatters the result back
  to the map (merge). Nothing of size windows x heads x N x M is ever materialised.
- :func:`dynamic_depthwise_conv`: DLGSANet's per-pixel depthwise convolution; each program loads one
  kernel tap for a block of pixels once and applies it to every channel of its group.

Both accumulate in float32 and run forward only; callers add the backward
(:class:`~restoregen.attention.backends.RecomputedBackward`). With ``TRITON_INTERPRET=1`` they run
in Triton's interpreter on CPU tensors (how the CPU tests check them).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _window_attention_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, bias_ptr, q_index_ptr, k_index_ptr, q_labels_ptr, k_labels_ptr,
    stride_qb, stride_qt, stride_kb, stride_kt, stride_vb, stride_vt, stride_ob, stride_ot,
    scale, mask_fill, queries, keys, heads, query_blocks,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_LABELS: tl.constexpr, PRECISION: tl.constexpr,
):
    # program -> (window, head, block of the window's queries); the batch is the second grid axis
    pid = tl.program_id(0)
    batch = tl.program_id(1)
    query_block = pid % query_blocks
    head = (pid // query_blocks) % heads
    window = pid // (query_blocks * heads)

    offs_m = query_block * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_valid = offs_m < queries
    d_valid = offs_d < HEAD_DIM
    q_pos = window * queries + offs_m
    q_tok = tl.load(q_index_ptr + q_pos, mask=m_valid, other=0).to(tl.int64)
    channel = head * HEAD_DIM + offs_d
    q = tl.load(q_ptr + batch * stride_qb + q_tok[:, None] * stride_qt + channel[None, :],
                mask=m_valid[:, None] & d_valid[None, :], other=0.0)
    if HAS_LABELS:
        q_label = tl.load(q_labels_ptr + q_pos, mask=m_valid, other=0)

    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(0, keys, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_valid = offs_n < keys
        k_pos = window * keys + offs_n
        k_tok = tl.load(k_index_ptr + k_pos, mask=n_valid, other=-1).to(tl.int64)
        k_real = n_valid & (k_tok >= 0)  # -1: a zero key/value (padding around the map)
        k_t = tl.load(k_ptr + batch * stride_kb + k_tok[None, :] * stride_kt + channel[:, None],
                      mask=d_valid[:, None] & k_real[None, :], other=0.0)
        scores = tl.dot(q, k_t, input_precision=PRECISION) * scale
        if HAS_BIAS:
            bias = tl.load(bias_ptr + (head * queries + offs_m[:, None]) * keys + offs_n[None, :],
                           mask=m_valid[:, None] & n_valid[None, :], other=0.0)
            scores += bias.to(tl.float32)
        if HAS_LABELS:
            k_label = tl.load(k_labels_ptr + k_pos, mask=n_valid, other=-1)
            scores = tl.where(q_label[:, None] == k_label[None, :], scores, scores + mask_fill)
        scores = tl.where(n_valid[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_ptr + batch * stride_vb + k_tok[:, None] * stride_vt + channel[None, :],
                    mask=k_real[:, None] & d_valid[None, :], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(out_ptr + batch * stride_ob + q_tok[:, None] * stride_ot + channel[None, :],
             out.to(out_ptr.dtype.element_ty), mask=m_valid[:, None] & d_valid[None, :])


def _block(size: int, largest: int = 64) -> int:
    """A power-of-two block of at least 16 (tl.dot's minimum) and at most ``largest``."""
    return max(16, min(largest, triton.next_power_of_2(size)))


def _precision(dtype: torch.dtype) -> str:
    return "tf32" if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 else "ieee"


def window_attention(q: Tensor, k: Tensor, v: Tensor, q_index: Tensor, k_index: Tensor, queries: int, keys: int,
                     num_heads: int, scale: float, bias: Tensor | None = None, q_labels: Tensor | None = None,
                     k_labels: Tensor | None = None, mask_fill: float = -100.0) -> Tensor:
    """Windowed attention of token-major maps in one kernel.

    Args:
        q, k, v: ``(B, L, C)`` (any batch and token strides, channels contiguous), ``C = heads * d``.
        q_index: ``(nW * queries,)`` int32: the token of each window's queries, window-major.
        k_index: ``(nW * keys,)`` int32: the token of each window's keys; -1 is a zero key and value.
        bias: ``(heads, queries, keys)`` contiguous, added to every window's scores.
        q_labels, k_labels: int32 regions of queries and keys; pairs from different regions get
            ``mask_fill`` added (Swin's shift mask).
    Returns ``(B, L, C)``: every token listed in ``q_index`` gets its window's attention output.
    """
    batch, _, channels = q.shape
    head_dim = channels // num_heads
    windows = q_index.numel() // queries
    out = torch.zeros(batch, q.shape[1], v.shape[2], device=q.device, dtype=q.dtype)
    block_m, block_n = _block(queries), _block(keys)
    query_blocks = triton.cdiv(queries, block_m)
    has_bias, has_labels = bias is not None, q_labels is not None
    grid = (windows * num_heads * query_blocks, batch)
    _window_attention_kernel[grid](
        q, k, v, out, bias if has_bias else q_index, q_index, k_index,
        q_labels if has_labels else q_index, k_labels if has_labels else k_index,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        float(scale), float(mask_fill), queries, keys, num_heads, query_blocks,
        HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=_block(head_dim, 256),
        HAS_BIAS=has_bias, HAS_LABELS=has_labels, PRECISION=_precision(q.dtype), num_warps=4,
    )
    return out


@triton.jit
def _dynamic_conv_kernel(
    x_ptr, w_ptr, out_ptr, channels, group_channels, groups, height, width, channel_blocks,
    KERNEL: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # program -> (block of pixels, batch x group x block of the group's channels)
    pixel_block = tl.program_id(0)
    rest = tl.program_id(1)
    channel_block = rest % channel_blocks
    group = (rest // channel_blocks) % groups
    batch = rest // (channel_blocks * groups)

    pixels = height * width
    offs_p = pixel_block * BLOCK_P + tl.arange(0, BLOCK_P)
    p_valid = offs_p < pixels
    row, col = offs_p // width, offs_p % width
    offs_c = channel_block * BLOCK_C + tl.arange(0, BLOCK_C)
    c_valid = offs_c < group_channels
    channel = group * group_channels + offs_c
    x_base = x_ptr + (batch * channels + channel[:, None]).to(tl.int64) * pixels
    w_base = w_ptr + (batch * groups + group).to(tl.int64) * (KERNEL * KERNEL * pixels)
    pad = (KERNEL - 1) // 2
    acc = tl.zeros((BLOCK_C, BLOCK_P), tl.float32)
    for tap in tl.static_range(KERNEL * KERNEL):
        src_row = row + (tap // KERNEL - pad)
        src_col = col + (tap % KERNEL - pad)
        inside = p_valid & (src_row >= 0) & (src_row < height) & (src_col >= 0) & (src_col < width)
        weight = tl.load(w_base + tap * pixels + offs_p, mask=p_valid, other=0.0).to(tl.float32)
        x = tl.load(x_base + (src_row * width + src_col)[None, :], mask=c_valid[:, None] & inside[None, :], other=0.0)
        acc += x.to(tl.float32) * weight[None, :]
    out_base = out_ptr + (batch * channels + channel[:, None]).to(tl.int64) * pixels
    tl.store(out_base + offs_p[None, :], acc.to(out_ptr.dtype.element_ty), mask=c_valid[:, None] & p_valid[None, :])


def dynamic_depthwise_conv(x: Tensor, weight: Tensor) -> Tensor:
    """``x`` ``(B, C, H, W)``, ``weight`` ``(B, G, k, k, H, W)`` (validated by the caller) -> ``(B, C, H, W)``."""
    batch, channels, height, width = x.shape
    groups, kernel = weight.shape[1], weight.shape[2]
    group_channels = channels // groups
    x, weight = x.contiguous(), weight.contiguous()
    out = torch.empty_like(x)
    block_p = 128
    block_c = max(2, min(16, triton.next_power_of_2(group_channels)))
    channel_blocks = triton.cdiv(group_channels, block_c)
    grid = (triton.cdiv(height * width, block_p), batch * groups * channel_blocks)
    _dynamic_conv_kernel[grid](x, weight, out, channels, group_channels, groups, height, width, channel_blocks,
                               KERNEL=kernel, BLOCK_P=block_p, BLOCK_C=block_c, num_warps=4)
    return out

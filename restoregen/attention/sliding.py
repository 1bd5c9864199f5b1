"""Sliding-window attention on token grids with inward windows (FreeSwim, neighbourhood attention).

Tokens lie on a grid ``(F, H, W)`` (any number of axes) in raster order: token ``f*H*W + h*W + w``.
Every query attends a fixed box of ``window`` keys around it. Near a border the box is shifted
inward so that it stays inside the grid and keeps its size (it is never clipped): along an axis of
size ``n`` with window ``w`` the box starts at ``clamp(i - (w - 1) // 2, 0, n - w)``. For the odd
windows FreeSwim uses (``w = 2d + 1``) this is the official ``[clamp(i - d, 0, n - 1 - 2d), ... + 2d]``.
A window of ``None`` (or one at least as large as the axis) covers the whole axis, so every query
sees exactly ``prod(min(w, n))`` keys.

Optional leading *global* tokens (e.g. the text tokens of a joint-attention model) see every key
and are seen by every query.

Backends (same selection as :func:`~restoregen.attention.attend`):

- ``math``: dense attention with the boolean ``(L, L)`` mask; the reference.
- ``sdpa``: query tiles gather only the box of keys their windows cover and run
  ``scaled_dot_product_attention`` on it, a memory-bounded chunk of tiles at a time. Memory grows
  as ``O(L * window)``, never ``O(L**2)``.
- ``flex``: FlexAttention with a block mask. Tokens are reordered into compact spatial tiles first
  so that the 128-token blocks are dense (raster order would waste most of the sparsity); the
  block mask is built from the tiles' bounding boxes, not by evaluating the ``(L, L)`` mask.

``auto`` picks ``flex`` on CUDA (a fused block-sparse kernel) and ``sdpa`` elsewhere (compiled
FlexAttention is no faster on CPU); ``triton`` has no kernel here and runs the ``auto`` choice
(:data:`~restoregen.attention.backends.OPERATIONS`, operation ``sliding``). Masks, gather plans
and block masks are cached per grid, window, global tokens and device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .backends import RecomputedBackward, attend, resolve, run_flex
from .windows import _no_inference

Grid = tuple[int, ...]
Window = tuple[int, ...]

# sdpa backend: most mask elements (queries x keys) of one query tile, and most elements a chunk
# of tiles materialises (masks plus gathered keys and values).
_TILE_MASK_ELEMENTS = 1 << 24
_CHUNK_ELEMENTS = 1 << 24
_FLEX_BLOCK = 128


def resolve_window(grid: Sequence[int], window: Sequence[int | None]) -> tuple[Grid, Window]:
    """Validate ``grid`` and ``window`` and return them with every window extent in ``[1, n]``."""
    grid = tuple(int(n) for n in grid)
    window = tuple(window)
    if not grid or any(n < 1 for n in grid):
        raise ValueError(f"grid {grid} must be a non-empty tuple of positive sizes")
    if len(window) != len(grid):
        raise ValueError(f"window {window} must have one extent per grid axis {grid} (None = whole axis)")
    extents = []
    for n, w in zip(grid, window, strict=True):
        if w is not None and int(w) < 1:
            raise ValueError(f"window extents must be positive or None, got {window}")
        extents.append(n if w is None else min(int(w), n))
    return grid, tuple(extents)


def window_starts(n: int, w: int, device: torch.device | str = "cpu") -> Tensor:
    """First key position of each query's inward window along an axis of size ``n``."""
    return (torch.arange(n, device=device) - (w - 1) // 2).clamp(0, n - w)


def _axis_mask(n: int, w: int, device) -> Tensor:
    """``(n, n)`` bool: query position i may attend key position j along one axis."""
    start = window_starts(n, w, device)[:, None]
    keys = torch.arange(n, device=device)[None, :]
    return (keys >= start) & (keys < start + w)


def _outer_and(masks: Sequence[Tensor]) -> Tensor:
    """Combine per-axis ``(..., q_a, k_a)`` masks into ``(..., prod q_a, prod k_a)`` (raster order)."""
    out = masks[0]
    for m in masks[1:]:
        lead = out.shape[:-2]
        out = out[..., :, None, :, None] & m[..., None, :, None, :]
        out = out.reshape(*lead, out.shape[-4] * out.shape[-3], out.shape[-2] * out.shape[-1])
    return out


@functools.lru_cache(maxsize=32)
@_no_inference
def _dense_mask(grid: Grid, window: Window, global_tokens: int, device: torch.device) -> Tensor:
    grid_mask = _outer_and([_axis_mask(n, w, device) for n, w in zip(grid, window, strict=True)])
    if not global_tokens:
        return grid_mask
    total = global_tokens + grid_mask.shape[0]
    mask = torch.ones(total, total, dtype=torch.bool, device=device)
    mask[global_tokens:, global_tokens:] = grid_mask
    return mask


def sliding_window_mask(grid: Sequence[int], window: Sequence[int | None], device: torch.device | str = "cpu",
                        global_tokens: int = 0) -> Tensor:
    """The dense ``(L, L)`` boolean mask (True = may attend), ``L = global_tokens + prod(grid)``.

    Cached per grid, window, global tokens and device; treat it as read-only.
    """
    grid, window = resolve_window(grid, window)
    return _dense_mask(grid, window, int(global_tokens), torch.device(device))


# ---------------------------------------------------------------------------------------------
# sdpa: tiles of queries gather the box of keys their windows cover


@dataclass(frozen=True)
class _AxisTiles:
    """Query tiles along one axis and the key range each tile needs."""

    queries: Tensor  # (tiles, t) query positions
    keys: Tensor  # (tiles, K) key positions
    mask: Tensor  # (tiles, t, K) bool
    owned: Tensor  # (tiles, t) bool: the tile writes this query's output (edge tiles overlap)
    pattern: Tensor  # (tiles,) id of the tile's mask (interior tiles share one)


def _axis_tiles(n: int, w: int, t: int, device) -> _AxisTiles:
    t = min(t, n)
    span = min(n, t + w - 1)  # keys covered by the windows of t consecutive queries
    num = -(-n // t)
    first = torch.arange(num, device=device) * t
    q_start = first.clamp(max=n - t)  # the last tile is shifted inward, like the windows
    queries = q_start[:, None] + torch.arange(t, device=device)
    starts = window_starts(n, w, device)
    k_start = starts[q_start].clamp(max=n - span)
    keys = k_start[:, None] + torch.arange(span, device=device)
    q_win = starts[queries][:, :, None]
    mask = (keys[:, None, :] >= q_win) & (keys[:, None, :] < q_win + w)
    pattern = torch.unique(mask.flatten(1), dim=0, return_inverse=True)[1]
    return _AxisTiles(queries, keys, mask, queries >= first[:, None], pattern)


def _tile_sizes(grid: Grid, window: Window) -> list[int]:
    """Query tile of the sdpa backend.

    Whole axes where the window covers them (every query there has the same keys), about a
    quarter window elsewhere (the gathered box is then at most ~1.25 windows). Until one tile's
    mask fits ``_TILE_MASK_ELEMENTS``, the largest windowed side is halved (that also shrinks the
    box of keys), and the whole axes only after them.
    """
    tile = [n if w >= n else max(1, w // 4) for n, w in zip(grid, window, strict=True)]
    windowed = [a for a, (n, w) in enumerate(zip(grid, window, strict=True)) if w < n]
    while True:
        keys = math.prod(min(n, t + w - 1) for n, w, t in zip(grid, window, tile, strict=True))
        if math.prod(tile) * keys <= _TILE_MASK_ELEMENTS or max(tile) == 1:
            return tile
        shrinkable = [a for a in windowed if tile[a] > 1] or range(len(tile))
        axis = max(shrinkable, key=lambda a: tile[a])
        tile[axis] = -(-tile[axis] // 2)


@dataclass(frozen=True)
class _GatherPlan:
    axes: tuple[_AxisTiles, ...]
    tiles: Tensor  # (T, axes) per-axis tile of each query tile, sorted so that equal masks are consecutive
    pattern: list[int]  # (T,) id of each query tile's mask
    q_index: Tensor  # (T, tq) grid token index of each tile query
    k_index: Tensor  # (T, K) grid token index of each gathered key
    inverse: Tensor  # (L,) position of each grid token's output in the concatenated tile outputs


def _raster_index(positions: Sequence[Tensor], grid: Grid) -> Tensor:
    """Raster indices of the product of per-axis ``(tiles, len_a)`` positions: ``(tiles, prod len_a)``."""
    index = positions[0]
    for pos, n in zip(positions[1:], grid[1:], strict=True):
        index = (index[:, :, None] * n + pos[:, None, :]).flatten(1)
    return index


@functools.lru_cache(maxsize=32)
@_no_inference
def _gather_plan(grid: Grid, window: Window, device: torch.device) -> _GatherPlan:
    axes = tuple(_axis_tiles(n, w, t, device) for n, w, t in zip(grid, window, _tile_sizes(grid, window), strict=True))
    tiles = torch.cartesian_prod(*(torch.arange(a.queries.shape[0], device=device) for a in axes))
    tiles = tiles.reshape(-1, len(axes))
    pattern = torch.zeros(tiles.shape[0], dtype=torch.long, device=device)
    for i, a in enumerate(axes):
        pattern = pattern * (int(a.pattern.max()) + 1) + a.pattern[tiles[:, i]]
    order = torch.argsort(pattern, stable=True)
    tiles, pattern = tiles[order], pattern[order]
    q_index = _raster_index([a.queries[tiles[:, i]] for i, a in enumerate(axes)], grid)
    k_index = _raster_index([a.keys[tiles[:, i]] for i, a in enumerate(axes)], grid)
    owned = _outer_and([a.owned[tiles[:, i]][:, :, None] for i, a in enumerate(axes)])[..., 0].flatten()
    inverse = torch.empty(math.prod(grid), dtype=torch.long, device=device)
    inverse[q_index.flatten()[owned]] = torch.arange(owned.numel(), device=device)[owned]
    return _GatherPlan(axes, tiles, pattern.tolist(), q_index, k_index, inverse)


def _chunk_bias(plan: _GatherPlan, start: int, stop: int, global_tokens: int, dtype: torch.dtype) -> Tensor:
    """Additive ``(tiles, 1, tq, G + K)`` mask of query tiles ``start:stop`` (0 inside, -inf outside)."""
    mask = _outer_and([a.mask[plan.tiles[start:stop, i]] for i, a in enumerate(plan.axes)])
    bias = torch.zeros(mask.shape[0], 1, mask.shape[1], global_tokens + mask.shape[2], dtype=dtype,
                       device=mask.device)
    bias[..., global_tokens:].masked_fill_(~mask[:, None], -math.inf)
    return bias


def _sdpa_sliding(q: Tensor, k: Tensor, v: Tensor, grid: Grid, window: Window, scale: float, global_tokens: int):
    b, h, length, d = q.shape
    plan = _gather_plan(grid, window, q.device)
    q3, k3, v3 = (t.reshape(b * h, length, t.shape[-1]) for t in (q, k, v))
    q_grid = q3[:, global_tokens:]
    k_global, v_global = k3[:, :global_tokens], v3[:, :global_tokens]
    k_grid, v_grid = k3[:, global_tokens:], v3[:, global_tokens:]
    tiles, tile_queries = plan.q_index.shape
    tile_keys = plan.k_index.shape[1] + global_tokens
    chunk = max(1, _CHUNK_ELEMENTS // (tile_keys * (tile_queries + b * h * (d + v.shape[-1]))))
    # one buffer for all tile outputs: appending small outputs between the large gathers fragments the heap
    out = q.new_empty(b * h, tiles * tile_queries, v.shape[-1])
    bias, bias_key = None, None
    for start in range(0, tiles, chunk):
        stop = min(start + chunk, tiles)
        qi, ki = plan.q_index[start:stop], plan.k_index[start:stop]
        if bias_key != plan.pattern[start:stop]:  # tiles are sorted by mask: consecutive chunks share it
            bias_key = plan.pattern[start:stop]
            bias = _chunk_bias(plan, start, stop, global_tokens, q.dtype)
        keys, values = k_grid[:, ki].transpose(0, 1), v_grid[:, ki].transpose(0, 1)  # tiles, bh, K, d
        if global_tokens:
            keys = torch.cat([k_global.expand(stop - start, -1, -1, -1), keys], dim=2)
            values = torch.cat([v_global.expand(stop - start, -1, -1, -1), values], dim=2)
        tile_out = F.scaled_dot_product_attention(q_grid[:, qi].transpose(0, 1), keys, values, attn_mask=bias,
                                                  scale=scale)
        out[:, start * tile_queries:stop * tile_queries] = tile_out.transpose(0, 1).flatten(1, 2)
    out = out[:, plan.inverse]
    if global_tokens:  # global queries attend every key
        out_global = F.scaled_dot_product_attention(q3[:, :global_tokens], k3, v3, scale=scale)
        out = torch.cat([out_global, out], dim=1)
    return out.reshape(b, h, length, v.shape[-1])


# ---------------------------------------------------------------------------------------------
# flex: tile-ordered tokens and a block mask built from the tiles' bounding boxes


def _flex_tile(grid: Grid, window: Window) -> tuple[int, ...]:
    """Tile shape for the token order of the flex backend.

    Axes the window covers whole are tiled whole: a key box does not grow with them (FreeSwim's
    frames). The other axes share what is left of a 128-token block in powers of two, in the
    window's aspect, so that each block's queries have a small, shared box of keys.
    """
    tile = [n if w >= n else 1 for n, w in zip(grid, window, strict=True)]
    free = math.prod(tile)
    for _ in range(int(math.log2(max(1, _FLEX_BLOCK // free)))):
        growable = [a for a, (n, w) in enumerate(zip(grid, window, strict=True)) if w < n and 2 * tile[a] <= n]
        if not growable:
            break
        axis = max(growable, key=lambda a: window[a] / tile[a])
        tile[axis] *= 2
    return tuple(tile)


@dataclass(frozen=True)
class _FlexPlan:
    order: Tensor  # (G+L,) token index at each tile-ordered position
    inverse: Tensor  # (G+L,) tile-ordered position of each token
    block_mask: object


@functools.lru_cache(maxsize=16)
@_no_inference
def _flex_plan(grid: Grid, window: Window, global_tokens: int, device: torch.device) -> _FlexPlan:
    from torch.nn.attention.flex_attention import BlockMask

    g = global_tokens
    length = math.prod(grid)
    total = g + length
    tile = _flex_tile(grid, window)
    coords = torch.stack(torch.unravel_index(torch.arange(length, device=device), grid))  # axes, L
    tiles_per_axis = [-(-n // t) for n, t in zip(grid, tile, strict=True)]
    tile_id = torch.zeros(length, dtype=torch.long, device=device)
    offset = torch.zeros(length, dtype=torch.long, device=device)
    for a, (t, count) in enumerate(zip(tile, tiles_per_axis, strict=True)):
        tile_id = tile_id * count + coords[a] // t
        offset = offset * t + coords[a] % t
    grid_order = torch.argsort(tile_id * math.prod(tile) + offset, stable=True)
    order = torch.cat([torch.arange(g, device=device), g + grid_order])
    inverse = torch.argsort(order)

    # per tile-ordered position: coordinates (0 for global tokens) and window bounds
    pos_coords = torch.zeros(len(grid), total, dtype=torch.long, device=device)
    pos_coords[:, g:] = coords[:, grid_order]
    starts = [window_starts(n, w, device) for n, w in zip(grid, window, strict=True)]
    lo = torch.stack([s[c] for s, c in zip(starts, pos_coords, strict=True)])  # axes, total
    hi = lo + torch.tensor(window, device=device)[:, None]
    is_global = torch.arange(total, device=device) < g

    # block-level bounds: boxes of keys, union and intersection of query windows
    blocks = -(-total // _FLEX_BLOCK)
    pad = blocks * _FLEX_BLOCK - total

    def per_block(x: Tensor, reduce: str, fill) -> Tensor:
        x = F.pad(x, (0, pad), value=fill).view(*x.shape[:-1], blocks, _FLEX_BLOCK)
        return x.amax(-1) if reduce == "max" else x.amin(-1)

    big = max(grid) + max(window) + 1
    k_min = per_block(pos_coords, "min", big)[:, None, :]  # axes, 1, kv blocks
    k_max = per_block(pos_coords, "max", -1)[:, None, :]
    union_lo, union_hi = per_block(lo, "min", big)[:, :, None], per_block(hi, "max", -1)[:, :, None]
    inter_lo, inter_hi = per_block(lo, "max", -1)[:, :, None], per_block(hi, "min", big)[:, :, None]
    needed = ((k_max >= union_lo) & (k_min < union_hi)).all(0)
    full = ((k_min >= inter_lo) & (k_max < inter_hi)).all(0)
    block_start = torch.arange(blocks, device=device) * _FLEX_BLOCK
    any_global, all_global = block_start < g, block_start + _FLEX_BLOCK <= g
    needed = needed | any_global[:, None] | any_global[None, :]
    full = (full & ~any_global[:, None] & ~any_global[None, :]) | all_global[:, None] | all_global[None, :]
    partial = needed & ~full

    def to_indices(m: Tensor) -> tuple[Tensor, Tensor]:
        counts = m.sum(-1, dtype=torch.int32)
        indices = torch.argsort(m.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
        return counts[None, None], indices[None, None]

    win = tuple(window)

    def mask_mod(b, h, q_idx, kv_idx):
        allowed = is_global[q_idx] | is_global[kv_idx]
        inside = None
        for a in range(len(win)):
            key = pos_coords[a][kv_idx]
            ok = (key >= lo[a][q_idx]) & (key < hi[a][q_idx])
            inside = ok if inside is None else inside & ok
        return allowed | inside

    block_mask = BlockMask.from_kv_blocks(*to_indices(partial), *to_indices(full), BLOCK_SIZE=_FLEX_BLOCK,
                                          mask_mod=mask_mod, seq_lengths=(total, total))
    return _FlexPlan(order, inverse, block_mask)


def _flex_forward(q: Tensor, k: Tensor, v: Tensor, plan: _FlexPlan, scale: float) -> Tensor:
    qt, kt, vt = (t[:, :, plan.order] for t in (q, k, v))
    return run_flex(qt, kt, vt, scale, block_mask=plan.block_mask)[:, :, plan.inverse]


def _flex_sliding(q: Tensor, k: Tensor, v: Tensor, grid: Grid, window: Window, scale: float, global_tokens: int):
    plan = _flex_plan(grid, window, global_tokens, q.device)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if not (needs_grad and q.device.type == "cpu"):
        return _flex_forward(q, k, v, plan, scale)
    # torch has no FlexAttention backward on the CPU: there the gradient comes from the sdpa path
    return RecomputedBackward.apply(
        lambda *qkv: _flex_forward(*qkv, plan, scale),
        lambda *qkv: _sdpa_sliding(*qkv, grid, window, scale, global_tokens), q, k, v)


# ---------------------------------------------------------------------------------------------


def _math_sliding(q, k, v, grid, window, scale, global_tokens):
    return attend(q, k, v, mask=_dense_mask(grid, window, global_tokens, q.device), scale=scale, backend="math")


_IMPLEMENTATIONS = {"math": _math_sliding, "sdpa": _sdpa_sliding, "flex": _flex_sliding}


def auto_sliding_backend(q: Tensor) -> str:
    """What ``auto`` runs for ``q``: ``flex`` on CUDA where FlexAttention exists, else ``sdpa``."""
    return resolve("sliding", q, "auto").name


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, grid: Sequence[int], window: Sequence[int | None],
                             scale: float | None = None, *, global_tokens: int = 0,
                             backend: str | None = None) -> Tensor:
    """Softmax attention where every grid query sees an inward-shifted window of grid keys.

    Args:
        q, k, v: ``(B, heads, L, D)`` with ``L = global_tokens + prod(grid)``; grid tokens in raster
            order (``f*H*W + h*W + w`` for a grid ``(F, H, W)``) after the global tokens.
        grid: token grid, e.g. ``(F, H, W)`` or ``(H, W)``.
        window: full window extent per axis; ``None`` = the whole axis. Extents larger than the
            axis are clamped to it.
        scale: multiplies ``q k^T``; defaults to ``D ** -0.5``.
        global_tokens: leading tokens that attend every key and that every query attends.
        backend: overrides the selected backend (``auto``, ``math``, ``sdpa``, ``flex``; ``triton``
            runs the ``auto`` choice).
    """
    grid, window = resolve_window(grid, window)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be (B, heads, L, D); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    expected = global_tokens + math.prod(grid)
    if q.shape[2] != expected or k.shape[2] != expected or v.shape[2] != expected:
        raise ValueError(f"sequence lengths {q.shape[2]}, {k.shape[2]}, {v.shape[2]} do not match "
                         f"{global_tokens} global tokens + grid {grid} = {expected}")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    implementation = _IMPLEMENTATIONS[resolve("sliding", q, backend).name]
    return implementation(q, k, v, grid, window, float(scale), int(global_tokens))

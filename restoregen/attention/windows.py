"""Window geometry for windowed attention on 2-D feature maps.

Maps are channels-last ``(B, H, W, C)``. Windows are ``(B, num_windows, tokens_per_window, C)`` in
row-major window order and row-major token order inside a window, as in Swin.

Index tensors and masks depend only on sizes, so they are cached per size, device and dtype. The
cached tensors are shared: treat them as read-only (``.clone()`` before registering one as a
buffer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .backends import resolve

Pair = tuple[int, int]


def to_pair(size: int | tuple[int, int] | list[int]) -> Pair:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def pad_to_multiple(x: Tensor, multiple: int | Pair, mode: str = "reflect") -> Tensor:
    """Pad the last two dimensions of ``x`` at the bottom/right up to multiples of ``multiple``.

    ``reflect`` is what the official HAT/DRCT/SwinIR test pipelines use. Where a side is too short
    to reflect the whole pad in one go, the reflection is repeated (the image is mirrored again).
    """
    mh, mw = to_pair(multiple)
    pad_h, pad_w = -x.shape[-2] % mh, -x.shape[-1] % mw
    while pad_h or pad_w:
        height, width = x.shape[-2:]
        if mode != "reflect" or (pad_h and height < 2) or (pad_w and width < 2):
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate" if mode == "reflect" else mode)
        step_h, step_w = min(pad_h, height - 1), min(pad_w, width - 1)
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def window_partition(x: Tensor, window: int | Pair) -> Tensor:
    """``(B, H, W, C)`` -> ``(B, nH*nW, wh*ww, C)``; H and W must be multiples of the window."""
    wh, ww = to_pair(window)
    b, h, w, c = x.shape
    if h % wh or w % ww:
        raise ValueError(f"feature map {h}x{w} is not a multiple of the window {wh}x{ww}")
    x = x.view(b, h // wh, wh, w // ww, ww, c).transpose(2, 3)
    return x.reshape(b, (h // wh) * (w // ww), wh * ww, c)


def window_merge(windows: Tensor, window: int | Pair, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B, nW, wh*ww, C)`` -> ``(B, H, W, C)``."""
    wh, ww = to_pair(window)
    b, _, _, c = windows.shape
    x = windows.view(b, height // wh, width // ww, wh, ww, c).transpose(2, 3)
    return x.reshape(b, height, width, c)


def map_windows(fn: Callable[[Tensor], Tensor], x: Tensor, window: int | Pair, shift: int | Pair = 0) -> Tensor:
    """Apply ``fn`` to the windows of a channels-last map, cyclically shifted by ``-shift`` first.

    ``x``: ``(B, H, W, C)`` with H, W multiples of the window; ``fn`` maps windows
    ``(B, nW, N, C)`` to ``(B, nW, N, C')``; the result ``(B, H, W, C')`` is rolled back by
    ``shift``. Pair the shift with :func:`shifted_window_mask` inside ``fn`` (Swin's SW-MSA).
    """
    sh, sw = to_pair(shift)
    _, height, width, _ = x.shape
    if sh or sw:
        x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
    out = window_merge(fn(window_partition(x, window)), window, height, width)
    return torch.roll(out, shifts=(sh, sw), dims=(1, 2)) if sh or sw else out


def overlapping_windows(x: Tensor, window: int, overlap_window: int) -> Tensor:
    """Key/value windows of HAT's overlapping cross-attention.

    Each ``window x window`` query window sees the ``overlap_window x overlap_window`` region centred
    on it; the map is zero-padded by ``(overlap_window - window) // 2`` (zero keys and values take
    part in the softmax, as in the official ``nn.Unfold``). ``(B, H, W, C)`` ->
    ``(B, nW, overlap_window**2, C)``.
    """
    pad = overlap_window - window
    if pad < 0 or pad % 2:
        raise ValueError(f"overlap window {overlap_window} must exceed window {window} by an even number")
    b, h, w, c = x.shape
    x = F.pad(x, (0, 0, pad // 2, pad // 2, pad // 2, pad // 2))
    x = x.unfold(1, overlap_window, window).unfold(2, overlap_window, window)  # b, nH, nW, c, ow, ow
    return x.permute(0, 1, 2, 4, 5, 3).reshape(b, (h // window) * (w // window), overlap_window**2, c)


def _no_inference(fn):
    """Build cached tensors as normal tensors, so inference-mode callers do not poison the cache."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode(False), torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


def _grid(height: int, width: int, device) -> Tensor:
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                                indexing="ij")
    return torch.stack((rows.flatten(), cols.flatten()))  # 2, h*w


@functools.lru_cache(maxsize=64)
@_no_inference
def relative_position_index(window: Pair, device: torch.device | str = "cpu") -> Tensor:
    """Swin's ``(N, N)`` index into a ``(2wh-1)(2ww-1)`` relative-position table, N = wh*ww."""
    wh, ww = to_pair(window)
    coords = _grid(wh, ww, device)
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + wh - 1) * (2 * ww - 1) + rel[1] + ww - 1


@functools.lru_cache(maxsize=64)
@_no_inference
def overlap_relative_position_index(window: int, overlap_window: int, device: torch.device | str = "cpu") -> Tensor:
    """HAT's ``(window**2, overlap_window**2)`` index into a ``(window+overlap_window-1)**2`` table.

    Reproduces the official formula, whose values can be negative: they wrap around the table
    (tensor indexing), which is what the released checkpoints were trained with.
    """
    query = _grid(window, window, device)
    key = _grid(overlap_window, overlap_window, device)
    rel = key[:, None, :] - query[:, :, None] + (window - overlap_window + 1)
    return rel[0] * (window + overlap_window - 1) + rel[1]


def relative_position_bias(table: Tensor, index: Tensor) -> Tensor:
    """Gather a ``(table_size, heads)`` table with an ``(N, M)`` index into a ``(heads, N, M)`` bias."""
    return table[index.reshape(-1)].view(*index.shape, -1).permute(2, 0, 1)


def cached_relative_position_bias(owner: object, table: Tensor, index: Tensor, mask: Tensor | None = None,
                                  tokens: Tensor | None = None) -> Tensor:
    """:func:`relative_position_bias` made contiguous, plus an additive ``(N, M)`` ``mask`` if given;
    with ``tokens``, only among those positions of the window (a square ``index`` restricted to them).

    Outside autograd (inference) the result is cached on ``owner`` (the module holding ``table``)
    per mask and tokens until the table changes, on backends that cache the bias: the reference
    (``math``) follows the official code, which gathers the bias again in every block call.
    """
    def build() -> Tensor:
        bias = relative_position_bias(table, index if tokens is None else index[tokens][:, tokens]).contiguous()
        return bias if mask is None else bias + mask

    if torch.is_grad_enabled() or torch.compiler.is_compiling() or not resolve("window", table).caches_bias:
        return build()
    cache = owner.__dict__.setdefault("_bias_cache", {})
    table_key = (table.data_ptr(), table._version, index.data_ptr(), torch.is_inference_mode_enabled())
    if cache.get("table") != table_key:
        cache.clear()
        cache["table"] = table_key
    key = (None if mask is None else (mask.data_ptr(), mask.dtype), None if tokens is None else tokens.data_ptr())
    if key not in cache:  # the entry keeps mask and tokens alive, so their addresses stay theirs
        cache[key] = (build(), mask, tokens)
    return cache[key][0]


def _shift_regions(height: int, width: int, window: Pair, shift: Pair, device) -> Tensor:
    """``(H, W)`` labels of Swin's shifted-window regions: after the cyclic shift by ``-shift``, a
    window can hold pixels from up to four regions that were not adjacent (labels 0..8)."""
    (wh, ww), (sh, sw) = window, shift

    def region(length: int, win: int, sft: int) -> Tensor:
        ids = torch.zeros(length, dtype=torch.int64, device=device)
        ids[length - win:] = 1
        ids[length - sft:] = 2
        return ids

    return region(height, wh, sh)[:, None] * 3 + region(width, ww, sw)[None, :]


@functools.lru_cache(maxsize=64)
@_no_inference
def shifted_window_mask(height: int, width: int, window: int | Pair, shift: int | Pair,
                        device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                        fill: float = -100.0) -> Tensor:
    """Additive ``(nW, N, N)`` mask of Swin's shifted windows on a ``height x width`` map.

    After the cyclic shift by ``-shift``, a window can hold pixels from up to four regions that
    were not adjacent; pairs from different regions get ``fill`` (-100 in HAT/SwinIR/DRCT).
    """
    window, shift = to_pair(window), to_pair(shift)
    labels = _shift_regions(height, width, window, shift, device)
    labels = window_partition(labels[None, :, :, None], window)[0, :, :, 0]  # nW, N
    different = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(different.shape, dtype=dtype, device=device).masked_fill_(different, fill)


@dataclass(frozen=True)
class WindowGroup:
    """Consecutive windows of a :class:`WindowLayout` that share one shift mask.

    In a layout with split regions, a group whose windows hold several shift regions of one shape
    has its tokens sorted by region instead: each region is a run of ``len(tokens)`` tokens that
    attends only to itself, with no mask. ``tokens`` gives the positions (row-major in the window)
    of one region's tokens; the others are translates of it, so they share its bias.
    """

    start: int
    stop: int
    mask: Tensor | None  # additive (N, N), None where the windows need no mask
    tokens: Tensor | None = None  # split regions: one region's token positions in the window

    def regions(self, tokens_per_window: int) -> int:
        """How many independent runs of tokens each window of the group holds."""
        return 1 if self.tokens is None else tokens_per_window // self.tokens.numel()


@dataclass(frozen=True)
class WindowLayout:
    """A (cyclically shifted) window partition of a ``height x width`` map as one gather.

    ``order[i]`` is the row-major pixel index of the i-th token in window order, after the shift:
    partitioning is one row gather (no roll, no permute copy) and merging is one more with the
    inverse permutation. Windows are sorted into groups sharing a shift mask (interior, last
    column, last row, corner), so attention needs one ``(N, N)`` mask per group instead of an
    ``(nW, N, N)`` tensor that grows with the image; with split regions a group sorts its windows'
    tokens by region and needs no mask (:class:`WindowGroup`). ``labels`` (shifted layouts only) gives the
    shift region of every token in layout order: the mask is -100 exactly between different labels
    (the fused kernels mask from the labels and never build a mask).
    """

    height: int
    width: int
    window: Pair
    order: Tensor
    inverse: Tensor
    groups: tuple[WindowGroup, ...]
    labels: Tensor | None = None

    @property
    def tokens_per_window(self) -> int:
        return self.window[0] * self.window[1]

    def partition(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` -> ``(B, nW, N, C)`` in layout order."""
        return gather_tokens(x, self.order).view(x.shape[0], -1, self.tokens_per_window, x.shape[-1])

    def merge(self, windows: Tensor) -> Tensor:
        """Inverse of :meth:`partition`: ``(B, nW, N, C)`` -> ``(B, H, W, C)``."""
        return gather_tokens(windows, self.inverse).view(windows.shape[0], self.height, self.width, -1)


def gather_tokens(x: Tensor, order: Tensor) -> Tensor:
    """The tokens ``order`` of every sample: ``(B, ..., C)`` with L tokens -> ``(B, len(order), C)``.

    One gather of whole rows from the ``(B*L, C)`` matrix: on the CPU several times faster than
    ``index_select`` along the token dimension of the 3-D tensor.
    """
    b, c = x.shape[0], x.shape[-1]
    rows = x.reshape(-1, c)
    if b > 1:
        tokens = rows.shape[0] // b
        order = (order + torch.arange(0, b * tokens, tokens, device=order.device)[:, None]).flatten()
    return rows.index_select(0, order).view(b, -1, c)


@functools.lru_cache(maxsize=64)
@_no_inference
def window_layout(height: int, width: int, window: Pair, shift: Pair = (0, 0),
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                  split_regions: bool = False) -> WindowLayout:
    """The cached :class:`WindowLayout` of a map; ``shift`` as in Swin's shifted windows.

    With ``split_regions``, windows that hold several shift regions of one shape (Swin's shift of
    half a window) get their tokens sorted by region (see :class:`WindowGroup`): attention then
    runs per region, skipping the masked pairs instead of computing and discarding them.
    """
    (wh, ww), (sh, sw) = to_pair(window), to_pair(shift)
    if height % wh or width % ww:
        raise ValueError(f"feature map {height}x{width} is not a multiple of the window {wh}x{ww}")
    rows, cols = height // wh, width // ww
    # window kind: 0 interior, 1 last column, 2 last row, 3 corner (only these see wrapped pixels)
    window_rows = torch.arange(rows, device=device).repeat_interleave(cols)
    window_cols = torch.arange(cols, device=device).repeat(rows)
    kind = (window_cols == cols - 1).long() * bool(sw) + (window_rows == rows - 1).long() * 2 * bool(sh)
    window_order = torch.sort(kind, stable=True).indices
    pixels = (torch.arange(height * width, device=device).view(height, width)
              .roll(shifts=(-sh, -sw), dims=(0, 1)))  # pixel shown at each position after the shift
    by_window = window_partition(pixels[None, :, :, None], (wh, ww))[0, :, :, 0][window_order]  # nW, N
    masks = shifted_window_mask(height, width, (wh, ww), (sh, sw), device, dtype) if sh or sw else None
    region_labels = None
    if sh or sw:
        regions = _shift_regions(height, width, (wh, ww), (sh, sw), device)
        region_labels = window_partition(regions[None, :, :, None], (wh, ww))[0, :, :, 0][window_order]  # nW, N
    groups, start = [], 0
    for value, count in zip(*torch.unique_consecutive(kind[window_order], return_counts=True), strict=True):
        stop = start + count.item()
        group = WindowGroup(start, stop, masks[window_order[start]] if masks is not None and value.item() else None)
        if split_regions and group.mask is not None:
            tokens = _region_tokens(region_labels[start:stop], (wh, ww))
            if tokens is not None:  # sort each window's tokens by region (stable: row-major inside)
                sort = torch.sort(region_labels[start:stop], dim=1, stable=True).indices
                by_window[start:stop] = by_window[start:stop].gather(1, sort)
                region_labels[start:stop] = region_labels[start:stop].gather(1, sort)
                group = WindowGroup(start, stop, None, tokens)
        groups.append(group)
        start = stop
    order = by_window.reshape(-1)
    labels = None if region_labels is None else region_labels.reshape(-1)
    return WindowLayout(height, width, (wh, ww), order, torch.argsort(order), tuple(groups), labels)


def _region_tokens(labels: Tensor, window: Pair) -> Tensor | None:
    """For windows ``(nW, N)`` of shift-region labels: the row-major positions of the first
    region's tokens if every region of every window is a translate of it, else None."""
    ww = window[1]
    reference = None
    for window_labels in labels:
        for label in torch.unique(window_labels):
            positions = torch.nonzero(window_labels == label).flatten()  # sorted, row-major
            rows, cols = positions // ww, positions % ww
            shape = torch.stack((rows - rows[0], cols - cols[0]))
            if reference is None:
                reference = (positions, shape)
            elif shape.shape != reference[1].shape or not torch.equal(shape, reference[1]):
                return None
    return reference[0]


@functools.lru_cache(maxsize=64)
@_no_inference
def overlapping_window_tokens(height: int, width: int, window: int, overlap_window: int,
                              device: torch.device | str = "cpu") -> Tensor:
    """The map token behind every key of :func:`overlapping_windows`: ``(nW * overlap_window**2,)``
    row-major token indices of a ``height x width`` map, -1 where the key is zero padding."""
    tokens = torch.arange(1, height * width + 1, device=device).view(1, height, width, 1)
    return overlapping_windows(tokens, window, overlap_window).reshape(-1) - 1

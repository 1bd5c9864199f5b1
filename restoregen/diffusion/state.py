"""What the FreeSwim hooks and processors of one patched model share.

The processors receive everything through a :class:`FreeSwimState`:

- ``window`` and ``scale`` are fixed when the model is patched (defaults: the official window,
  training grid + 1 made odd, and the official log-scaled softmax scale);
- ``grid`` is written by a hook on the model's rotary module before every forward pass (or set by
  hand when a processor is called directly);
- ``dual`` tells whether the batch holds both branches (rows ``[window; full]``), as written by the
  hook on the model's forward; ``cache`` is the cross-attention cache of cache mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..attention import attend, sliding_window_attention
from .cache import CrossAttentionCache
from .official import OFFICIAL_TRAIN_GRID, log_scale


@dataclass
class FreeSwimState:
    """Settings and per-forward facts shared by the hooks and processors of one model.

    Args:
        window: window extent per grid axis in tokens (``None`` = the whole axis).
        scale: ``"log"`` (FreeSwim's log scale over ``train_grid``), ``"default"`` (``1/sqrt(d)``)
            or a number.
        train_grid: training-size token grid ``(h, w)`` for the log scale.
        grid: the current token grid ``(F, H, W)``.
        dual: the batch is ``[window rows; full rows]``.
        cache: cross-attention cache (cache mode) or None.
    """

    window: tuple[int | None, ...]
    scale: float | str = "log"
    train_grid: tuple[int, int] = OFFICIAL_TRAIN_GRID
    grid: tuple[int, ...] | None = None
    dual: bool = True
    cache: CrossAttentionCache | None = None
    call_batch: int | None = field(default=None, repr=False)  # rows of the current call before doubling

    def __post_init__(self) -> None:
        if isinstance(self.scale, str) and self.scale not in ("log", "default"):
            raise ValueError(f"scale must be 'log', 'default' or a number, got {self.scale!r}")

    def softmax_scale(self, head_dim: int) -> float:
        if self.scale == "log":
            return log_scale(head_dim, math.prod(self.train_grid))
        if self.scale == "default":
            return head_dim**-0.5
        return float(self.scale)

    def current_grid(self) -> tuple[int, ...]:
        if self.grid is None:
            raise RuntimeError("FreeSwim does not know the token grid: the rotary-embedding hook has not run "
                               "(set state.grid when calling a processor directly)")
        return self.grid

    def attend(self, q: Tensor, k: Tensor, v: Tensor, global_tokens: int = 0, dual: bool | None = None) -> Tensor:
        """Self-attention of ``(B, heads, L, D)`` tensors: window rows windowed, full rows full.

        ``dual`` overrides ``self.dual`` (False: every row is a window row).
        """
        scale = self.softmax_scale(q.shape[-1])
        grid = self.current_grid()
        if not (self.dual if dual is None else dual):
            return sliding_window_attention(q, k, v, grid, self.window, scale, global_tokens=global_tokens)
        half = split_rows(q.shape[0])
        windowed = sliding_window_attention(q[:half], k[:half], v[:half], grid, self.window, scale,
                                            global_tokens=global_tokens)
        full = attend(q[half:], k[half:], v[half:], scale=scale)
        return torch.cat([windowed, full], dim=0)


def split_rows(batch: int) -> int:
    if batch % 2:
        raise RuntimeError(f"FreeSwim's dual path expects an even batch [window rows; full rows], got {batch} rows")
    return batch // 2


"""FreeSwim's official settings and formulas (WillWu111/FreeSwim), as plain Python.

Light on purpose: the ``restoregen freeswim`` command reads its defaults from here without
importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Wan2.1-T2V-1.3B's training size, 480 x 832 pixels, in tokens (8x VAE, 2x2 patches).
OFFICIAL_TRAIN_GRID = (30, 52)


def official_window(train_grid: tuple[int, int]) -> tuple[None, int, int]:
    """FreeSwim's window: all frames and the training grid + 1 made odd (``2 * (n // 2) + 1``).

    The official code uses ``d = base_size // 16 // 2`` and a ``(2d + 1)``-wide window centred
    on the query, i.e. 31 x 53 tokens for the 30 x 52 grid of Wan2.1 at 480 x 832.
    """
    return (None, *(2 * (n // 2) + 1 for n in train_grid))


def log_scale(head_dim: int, train_tokens: int) -> float:
    """FreeSwim's log-scaled softmax scale ``sqrt(log_N(2N) / head_dim)``, N = training tokens per frame.

    The official code fixes N = 30 * 52 (Wan2.1 at 480 x 832), giving ``1.04608 / sqrt(head_dim)``,
    for both branches whatever the target size.
    """
    return math.sqrt(math.log(2 * train_tokens, train_tokens) / head_dim)


@dataclass(frozen=True)
class Recipe:
    """The official coarse-to-fine recipe (``inference.py``)."""

    train_size: tuple[int, int] = (480, 832)  # Wan2.1-T2V-1.3B
    target_size: tuple[int, int] = (1088, 1920)
    num_frames: int = 81
    guidance_scale: float = 5.0
    strength: float = 0.7  # video-to-video strength of the second pass
    flow_shift: float = 9.0  # scheduler flow shift of the second pass


OFFICIAL = Recipe()
OFFLOAD = ("none", "model", "sequential")

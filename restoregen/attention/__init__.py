"""restoregen's shared attention library: tensors in, tensors out.

Every network and the diffusers patch call it; none re-implements it. It imports nothing else of
restoregen.
"""

from .backends import (
    BACKENDS,
    ENV_VAR,
    attend,
    attention_backend,
    auto_backend,
    available_backends,
    flex_available,
    requested_backend,
)
from .modules import WindowAttention, merge_heads, qkv_heads, split_heads
from .sliding import sliding_window_attention, sliding_window_mask
from .windows import (
    overlap_relative_position_index,
    overlapping_windows,
    pad_to_multiple,
    relative_position_bias,
    relative_position_index,
    shifted_window_mask,
    to_pair,
    window_merge,
    window_partition,
)

__all__ = [
    "BACKENDS", "ENV_VAR", "attend", "attention_backend", "auto_backend", "available_backends",
    "flex_available", "requested_backend", "WindowAttention", "merge_heads", "qkv_heads", "split_heads",
    "overlap_relative_position_index", "overlapping_windows", "pad_to_multiple", "relative_position_bias",
    "relative_position_index", "shifted_window_mask", "to_pair", "window_merge", "window_partition",
    "sliding_window_attention", "sliding_window_mask",
]

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
    resolve_backend,
)
from .channel import (
    CHANNEL_ATTENTION_ACTIVATIONS,
    channel_attention,
    channel_self_attention,
    tlc_grid,
    tlc_merge,
    tlc_partition,
)
from .dynamic import DYNAMIC_CONV_METHODS, dynamic_depthwise_conv
from .modules import WindowAttention, WindowAttentionCore, merge_heads, qkv_heads, split_heads
from .sliding import sliding_window_attention, sliding_window_mask
from .windows import (
    map_windows,
    overlap_relative_position_index,
    overlapping_windows,
    pad_to_multiple,
    relative_position_bias,
    relative_position_index,
    shifted_window_mask,
    to_pair,
    WindowGroup,
    WindowLayout,
    window_layout,
    window_merge,
    window_partition,
)

__all__ = [
    "BACKENDS", "ENV_VAR", "attend", "attention_backend", "auto_backend", "available_backends",
    "flex_available", "requested_backend", "resolve_backend", "WindowAttention", "WindowAttentionCore",
    "merge_heads", "qkv_heads", "split_heads", "WindowGroup", "WindowLayout", "map_windows",
    "overlap_relative_position_index", "overlapping_windows", "pad_to_multiple", "relative_position_bias",
    "relative_position_index", "shifted_window_mask", "to_pair", "window_layout", "window_merge", "window_partition",
    "CHANNEL_ATTENTION_ACTIVATIONS", "channel_attention", "channel_self_attention", "tlc_grid", "tlc_merge",
    "tlc_partition", "DYNAMIC_CONV_METHODS", "dynamic_depthwise_conv",
    "sliding_window_attention", "sliding_window_mask",
]

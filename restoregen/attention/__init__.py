"""restoregen's shared attention library: tensors in, tensors out.

Every network and the diffusers patch call it; none re-implements it. It imports nothing else of
restoregen.
"""

from .backends import (
    BACKENDS,
    CUDA_AUTO,
    ENV_VAR,
    OPERATIONS,
    SDPA_HEAD_MULTIPLE,
    Backend,
    Operation,
    attend,
    attention_backend,
    auto_backend,
    available_backends,
    backend_table,
    flex_available,
    merge_heads,
    pad_head_dim,
    qkv_heads,
    requested_backend,
    resolve,
    resolve_backend,
    split_heads,
    triton_available,
    window_backend,
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
from .epilogue import LinearWeights, fuses_linear_epilogues, linear_epilogue, onednn_linear_available
from .fused import overlapping_window_attention
from .modules import WindowAttention, WindowAttentionCore
from .profiling import sdpa_kernels
from .sliding import sliding_window_attention, sliding_window_mask
from .windows import (
    WindowGroup,
    WindowLayout,
    cached_relative_position_bias,
    map_windows,
    overlap_relative_position_index,
    overlapping_window_tokens,
    overlapping_windows,
    pad_to_multiple,
    relative_position_bias,
    relative_position_index,
    shifted_window_mask,
    to_pair,
    window_layout,
    window_merge,
    window_partition,
)

__all__ = [
    "BACKENDS", "CUDA_AUTO", "ENV_VAR", "OPERATIONS", "SDPA_HEAD_MULTIPLE", "Backend", "Operation", "attend",
    "attention_backend", "auto_backend", "available_backends", "backend_table", "flex_available", "pad_head_dim",
    "requested_backend", "resolve", "resolve_backend",
    "triton_available", "window_backend", "sdpa_kernels", "WindowAttention", "WindowAttentionCore",
    "merge_heads", "qkv_heads", "split_heads", "WindowGroup", "WindowLayout", "cached_relative_position_bias",
    "map_windows", "overlap_relative_position_index", "overlapping_window_attention", "overlapping_window_tokens",
    "overlapping_windows", "pad_to_multiple", "relative_position_bias", "relative_position_index",
    "shifted_window_mask", "to_pair", "window_layout", "window_merge", "window_partition",
    "CHANNEL_ATTENTION_ACTIVATIONS", "channel_attention", "channel_self_attention", "tlc_grid", "tlc_merge",
    "tlc_partition", "DYNAMIC_CONV_METHODS", "dynamic_depthwise_conv", "LinearWeights", "fuses_linear_epilogues",
    "linear_epilogue", "onednn_linear_available",
    "sliding_window_attention", "sliding_window_mask",
]

"""FreeSwim on stock diffusers pipelines: training-free generation above the training size.

``patch(pipe)`` / ``unpatch(pipe)`` / ``with patched(pipe): ...`` install and remove FreeSwim's
inward sliding-window self-attention, its full-attention branch whose cross-attention overrides
the window branch's, and the optional cross-attention cache. ``coarse_to_fine`` is the official
recipe (generate at the training size, resize, re-denoise video-to-video at the target size).

diffusers is imported only when a pipeline is patched or a recipe runs.
"""

from .cache import CrossAttentionCache
from .patch import freeswim_state, is_patched, patch, patched, unpatch
from .processors import (CrossAttnOverrideProcessor, FluxJointAttnProcessor, LTXSelfAttnProcessor,
                         WanSelfAttnProcessor)
from .state import OFFICIAL_TRAIN_GRID, FreeSwimState, log_scale, official_window

__all__ = [
    "CrossAttentionCache", "CrossAttnOverrideProcessor", "FluxJointAttnProcessor", "FreeSwimState",
    "LTXSelfAttnProcessor", "OFFICIAL_TRAIN_GRID", "WanSelfAttnProcessor", "freeswim_state", "is_patched",
    "log_scale", "official_window", "patch", "patched", "unpatch",
]

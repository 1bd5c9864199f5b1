"""FreeSwim on stock diffusers pipelines: training-free generation above the training size.

``patch(pipe)`` / ``unpatch(pipe)`` / ``with patched(pipe): ...`` install and remove FreeSwim's
inward sliding-window self-attention, its full-attention branch whose cross-attention overrides
the window branch's, and the optional cross-attention cache. ``coarse_to_fine`` is the official
recipe (generate at the training size, resize, re-denoise video-to-video at the target size).

Submodules load on first use; diffusers is imported only when a pipeline is patched or the
recipe runs.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "CrossAttentionCache": "cache",
    "CrossAttnOverrideProcessor": "processors", "FluxJointAttnProcessor": "processors",
    "LTXSelfAttnProcessor": "processors", "WanSelfAttnProcessor": "processors",
    "FreeSwimState": "state",
    "OFFICIAL": "official", "OFFICIAL_TRAIN_GRID": "official", "log_scale": "official", "official_window": "official",
    "freeswim_state": "patching", "is_patched": "patching", "patch": "patching", "patched": "patching",
    "unpatch": "patching",
    "coarse_to_fine": "recipe",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

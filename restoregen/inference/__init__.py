"""Inference: checkpoint loading, image I/O, tiling, the folder runner and the ``upscale`` / ``sample`` commands.

Submodules load on first use, so that importing a command (for ``--help``) stays cheap.
"""

from __future__ import annotations

from .._lazy import lazy_exports

# name -> submodule that defines it
_EXPORTS = {
    "load_model": "loading", "ModelInfo": "loading", "CheckpointError": "loading", "default_model_path": "loading",
    "read_image": "io", "write_image": "io", "ImageData": "io", "ImageReadError": "io",
    "Upscaler": "tiling", "tiled_forward": "tiling", "fp16_guard": "precision",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

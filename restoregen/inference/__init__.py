"""Inference: checkpoint loading, image I/O, tiling, the folder runner and the ``upscale`` / ``sample`` commands.

Submodules load on first use, so that importing a command (for ``--help``) stays cheap.
"""

from __future__ import annotations

import importlib

# name -> submodule that defines it
_EXPORTS = {
    "load_model": "loading", "ModelInfo": "loading", "CheckpointError": "loading", "default_model_path": "loading",
    "read_image": "io", "write_image": "io", "ImageData": "io", "ImageReadError": "io",
    "Upscaler": "tiling", "tiled_forward": "tiling", "fp16_guard": "precision",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

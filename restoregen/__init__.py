"""restoregen: HAT, DRCT, DLGSANet, StyleSwin and FreeSwim on one fused attention library.

Importing the package is cheap; submodules load on first use (``restoregen.build`` imports the
networks, nothing imports diffusers or lpips until a feature needs them).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"attention", "archs", "cli", "inference"}
_FUNCTIONS = {"build": "archs", "list_archs": "archs", "attention_backend": "attention", "attend": "attention",
              "load_model": "inference"}

__all__ = ["__version__", *sorted(_SUBMODULES), *sorted(_FUNCTIONS)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

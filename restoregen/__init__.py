"""restoregen: HAT, DRCT, DLGSANet, StyleSwin and FreeSwim on one fused attention library.

Importing the package is cheap; submodules load on first use (``restoregen.build`` imports the
networks, nothing imports diffusers or lpips until a feature needs them).
"""

from __future__ import annotations

from ._compat import install_functional_tensor_alias
from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {name: name for name in ("attention", "archs", "cli", "inference")} | {
    "build": "archs", "list_archs": "archs", "attention_backend": "attention", "attend": "attention",
    "load_model": "inference",
}

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
install_functional_tensor_alias()  # `import restoregen, basicsr` works with torchvision >= 0.17

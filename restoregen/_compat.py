"""The one place that makes basicsr 1.4.2 importable with current torchvision.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, which torchvision removed in
0.17. :func:`import_basicsr` installs an alias module for it (only when it is missing), imports
basicsr and registers restoregen's networks in basicsr's ``ARCH_REGISTRY``. Import basicsr only
through this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def _install_functional_tensor_alias() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    import torchvision.transforms.functional as functional

    alias = types.ModuleType(name)
    alias.__dict__.update({k: v for k, v in vars(functional).items() if not k.startswith("__")})
    sys.modules[name] = alias


def import_basicsr(submodule: str | None = None) -> types.ModuleType:
    """Import ``basicsr`` (or ``basicsr.<submodule>``) with the compatibility alias in place."""
    _install_functional_tensor_alias()
    module = importlib.import_module("basicsr" if submodule is None else f"basicsr.{submodule}")
    from .archs import register_with_basicsr

    register_with_basicsr()
    return module

"""The one place that makes basicsr 1.4.2 importable with current torchvision.

basicsr 1.4.2 (its last release) imports ``torchvision.transforms.functional_tensor``, which
torchvision removed in 0.17. :func:`install_functional_tensor_alias`, run by ``import restoregen``,
puts a finder at the end of ``sys.meta_path`` that answers for that one module name with an alias of
``torchvision.transforms.functional`` (which holds the same functions). It imports nothing until
the name is imported, and a torchvision that still has the module is found first. So
``import restoregen, basicsr`` works; a bare ``import basicsr`` before restoregen does not.
:func:`import_basicsr` imports basicsr and registers restoregen's networks in its
``ARCH_REGISTRY``. Import basicsr only through this module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

ALIASED = "torchvision.transforms.functional_tensor"


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        functional = importlib.import_module("torchvision.transforms.functional")
        module.__dict__.update({k: v for k, v in vars(functional).items() if not k.startswith("__")})


class FunctionalTensorFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`ALIASED` when nothing before it on ``sys.meta_path`` did."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIASED:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader())


def install_functional_tensor_alias() -> None:
    """Append :class:`FunctionalTensorFinder` to ``sys.meta_path`` (once). Cheap: imports nothing."""
    if not any(isinstance(finder, FunctionalTensorFinder) for finder in sys.meta_path):
        sys.meta_path.append(FunctionalTensorFinder())


def import_basicsr(submodule: str | None = None) -> types.ModuleType:
    """Import ``basicsr`` (or ``basicsr.<submodule>``) with the compatibility alias in place."""
    install_functional_tensor_alias()
    module = importlib.import_module("basicsr" if submodule is None else f"basicsr.{submodule}")
    from .archs import register_with_basicsr

    register_with_basicsr()
    return module

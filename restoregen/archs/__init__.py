"""Networks: one module per family, a registry, and the shared blocks.

``build(name, **kwargs)`` takes the official class name and the official constructor arguments;
the module's ``state_dict()`` has the official key names and shapes.
"""

from . import dlgsanet, drct, hat, styleswin  # noqa: F401  (register the networks)
from .detect import UnknownArchitecture, detect
from .registry import build, get_arch, list_archs, register, register_with_basicsr

__all__ = ["UnknownArchitecture", "build", "detect", "get_arch", "list_archs", "register", "register_with_basicsr"]

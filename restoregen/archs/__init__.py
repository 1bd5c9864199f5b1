"""Networks: one module per family, a registry, and the shared blocks.

``build(name, **kwargs)`` takes the official class name and the official constructor arguments;
the module's ``state_dict()`` has the official key names and shapes.
"""

from . import dlgsanet, drct, hat  # noqa: F401  (register DLGSANet, DRCT, HAT)
from .registry import build, get_arch, list_archs, register, register_with_basicsr

__all__ = ["build", "get_arch", "list_archs", "register", "register_with_basicsr"]

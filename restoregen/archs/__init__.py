"""Networks: one module per family, a registry, and the shared blocks.

``build(name, **kwargs)`` takes the official class name and the official constructor arguments;
the module's ``state_dict()`` has the official key names and shapes. Each network module registers
its class with what the rest of restoregen needs to know about it (:class:`.registry.Network`).
"""

# one line per network module; this order is the order of detection and of the names in messages
from . import hat, drct, dlgsanet, styleswin  # noqa: F401, I001  (register the networks)
from .detect import UnknownArchitecture, detect
from .registry import (GENERATOR, IMAGE_TO_IMAGE, Network, build, family_names, get_arch, list_archs, network, networks,
                       register, register_with_basicsr, unregister)

__all__ = ["GENERATOR", "IMAGE_TO_IMAGE", "Network", "UnknownArchitecture", "build", "detect", "family_names",
           "get_arch", "list_archs", "network", "networks", "register", "register_with_basicsr", "unregister"]

"""Name -> network class registry; ``build(name, **kwargs)`` takes the official class name and
constructor arguments."""

from __future__ import annotations

import difflib
import sys

from torch import nn

_ARCHS: dict[str, type[nn.Module]] = {}


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable under its class name (the official name)."""
    if cls.__name__ in _ARCHS and _ARCHS[cls.__name__] is not cls:
        raise ValueError(f"architecture {cls.__name__!r} is registered twice")
    _ARCHS[cls.__name__] = cls
    if "basicsr.utils.registry" in sys.modules:
        _register_in_basicsr(cls)
    return cls


def list_archs() -> list[str]:
    return sorted(_ARCHS)


def get_arch(name: str) -> type[nn.Module]:
    try:
        return _ARCHS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list_archs(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown architecture {name!r}{hint} (known: {', '.join(list_archs())})") from None


def build(name: str, **kwargs) -> nn.Module:
    """Build network ``name`` from its official constructor arguments (an option file's ``network_g``
    without ``type``)."""
    cls = get_arch(name)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise TypeError(f"{name}: {error}") from error


def _register_in_basicsr(cls: type[nn.Module]) -> None:
    from basicsr.utils.registry import ARCH_REGISTRY

    if cls.__name__ not in ARCH_REGISTRY:  # an official package may have registered its own already
        ARCH_REGISTRY.register(cls)


def register_with_basicsr() -> None:
    """Add every restoregen network to basicsr's ``ARCH_REGISTRY`` (done automatically when basicsr
    is imported through :mod:`restoregen._compat` or before restoregen)."""
    for cls in _ARCHS.values():
        _register_in_basicsr(cls)

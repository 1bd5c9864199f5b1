"""The networks restoregen implements, each described by its own module.

A network module registers its class with :func:`register`; the description says how to recognise
its weights (``matches``), how to read its constructor arguments back from them (``recover``), which
arguments the weights cannot reveal (``unrecoverable``), its channels, its scale, the multiple it
pads inputs to, the feature width the tiler budgets memory with, its golden-fixture folder and its
training recipes. Detection, loading, tiling, the recipes table, help texts and tests read it from
here (``docs/adding-a-network.md``). ``build(name, **kwargs)`` takes the official class name and
constructor arguments.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

IMAGE_TO_IMAGE = "image-to-image"  # the task of networks that ``restoregen upscale`` runs
GENERATOR = "generator"  # latent codes in, images out (``restoregen sample``)


@dataclass(frozen=True)
class Network:
    """What restoregen knows about one registered network class."""

    cls: type[nn.Module]
    task: str = IMAGE_TO_IMAGE
    # does a state dict (a :class:`~restoregen.archs.detect.Weights`) look like this network?
    matches: Callable[[Any], bool] | None = None
    # its official constructor arguments, read from the tensor shapes
    recover: Callable[[Any], dict[str, Any]] | None = None
    # arguments that leave no trace in the weights, with the value ``recover`` gives them
    unrecoverable: Mapping[str, Any] = field(default_factory=dict)
    # of a built network: its input (= output) channels; output side / input side; the multiple it
    # pads inputs to (tiles start on it); its feature channels per pixel (the tiler's memory estimate)
    in_channels: Callable[[nn.Module], int] = lambda model: 3
    scale: Callable[[nn.Module], int] = lambda model: 1
    input_multiple: Callable[[nn.Module], int] = lambda model: 1
    width: Callable[[nn.Module], int] = lambda model: 64
    fixtures: str = ""  # its folder of golden fixtures in ``shared/reference``
    recipes: Mapping[str, str] = field(default_factory=dict)  # option-file model_type -> "module:Recipe"

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def detectable(self) -> bool:
        return self.matches is not None and self.recover is not None


_ARCHS: dict[str, Network] = {}


def register(cls: type[nn.Module] | None = None, **description: Any):
    """Class decorator: make ``cls`` buildable under its class name (the official name), described
    by ``description`` (the fields of :class:`Network`). ``@register`` alone registers a class that
    no file is detected as (e.g. a discriminator)."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        known = _ARCHS.get(cls.__name__)
        if known is not None and known.cls is not cls:
            raise ValueError(f"architecture {cls.__name__!r} is registered twice")
        _ARCHS[cls.__name__] = Network(cls, **description)
        if "basicsr.utils.registry" in sys.modules:
            _register_in_basicsr(cls)
        return cls

    return add if cls is None else add(cls)


def unregister(name: str) -> None:
    """Remove network ``name`` (for tests that register a throw-away class)."""
    _ARCHS.pop(name, None)


def list_archs() -> list[str]:
    return sorted(_ARCHS)


def networks(task: str | None = None) -> list[Network]:
    """The registered networks in registration order (the order of detection), of ``task`` if given."""
    return [network for network in _ARCHS.values() if task is None or network.task == task]


def family_names(task: str | None = IMAGE_TO_IMAGE, last: str = ", ") -> str:
    """The detectable networks of ``task`` as text: ``"HAT, DRCT, DLGSANet"`` (``last=" or "``:
    ``"HAT, DRCT or DLGSANet"``)."""
    names = [network.name for network in networks(task) if network.detectable]
    return last.join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def recipes() -> dict[str, str]:
    """Option-file ``model_type`` -> ``"module:Recipe"`` under :mod:`restoregen.train.recipes`, as the
    networks declare them."""
    table: dict[str, str] = {}
    for network in _ARCHS.values():
        table.update(network.recipes)
    return table


def network(name: str) -> Network:
    """The description of registered network ``name``."""
    try:
        return _ARCHS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list_archs(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown architecture {name!r}{hint} (known: {', '.join(list_archs())})") from None


def get_arch(name: str) -> type[nn.Module]:
    return network(name).cls


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
    for network in _ARCHS.values():
        _register_in_basicsr(network.cls)

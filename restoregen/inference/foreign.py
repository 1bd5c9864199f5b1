"""Architectures restoregen does not implement itself, built by spandrel.

spandrel (https://github.com/chaiNNer-org/spandrel) recognises and builds several dozen image
networks (ESRGAN/RRDBNet, Real-ESRGAN Compact, SwinIR, Swin2SR, DAT, SPAN, OmniSR, RealPLKSR,
SCUNet, NAFNet, ...) from a bare state dict. It only ever sees the tensors that restoregen's safe
reader produced; it never opens the user's file. The network then runs through restoregen's
pipeline as a :class:`SpandrelNetwork`: scale, channels and precisions as spandrel's descriptor
states them, tiles on the network's grid (:func:`tile_grid`).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoints import CheckpointError
from .loading import ModelInfo, describe_keys, key_variants

__all__ = ["SpandrelNetwork", "load_foreign", "spandrel_allowed", "spandrel_version", "tile_grid"]

ENV_VAR = "RESTOREGEN_SPANDREL"  # "0": never build networks through spandrel


def spandrel_version() -> str | None:
    """The installed spandrel's version, or None when it is not installed."""
    try:
        import spandrel
    except ImportError:
        return None
    return spandrel.__version__


def spandrel_allowed() -> bool:
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


class SpandrelNetwork(nn.Module):
    """A spandrel image-to-image model as a plain module: ``forward`` is the descriptor's call (pad to
    its size requirements, run, crop, clamp to [0, 1]). ``net`` is the descriptor's own module, so
    ``.to()`` and hooks act on the real layers."""

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.net = descriptor.model
        self.__dict__["descriptor"] = descriptor  # not a submodule: it shares self.net

    def forward(self, x: Tensor) -> Tensor:
        return self.descriptor(x)


# the grid a network pads its input to inside forward(), where no attribute names it
_INTERNAL_GRID = {"SCUNet": 64}
_GRID_ATTRIBUTES = ("window_size", "padder_size", "split_size")


def tile_grid(descriptor: Any) -> int:
    """The multiple tiles start on: spandrel's ``multiple_of`` combined with the grid the network
    pads to inside ``forward`` (window, padder and split sizes; spandrel's ``multiple_of`` leaves
    those out because the network pads by itself). A tile on that grid computes what the whole
    image would, away from its borders; off it, a windowed network groups other pixels."""
    grid = max(int(descriptor.size_requirements.multiple_of), 1)
    grid = math.lcm(grid, _INTERNAL_GRID.get(descriptor.architecture.name, 1))
    for module in descriptor.model.modules():
        for name in _GRID_ATTRIBUTES:
            value = getattr(module, name, None)
            for size in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(size, int) and not isinstance(size, bool) and 0 < size <= 256:
                    grid = math.lcm(grid, size)
    return grid


def _recognise(stored: dict[str, Tensor]) -> tuple[Any, dict[str, Tensor]] | None:
    """spandrel's first architecture (in its detection order) that claims a key variant of ``stored``."""
    from spandrel import MAIN_REGISTRY

    for variant in key_variants(stored):  # as stored first: old ESRGAN files need their "model." keys
        for support in MAIN_REGISTRY.architectures("detection"):
            if support.detect(variant):
                return support, variant
    return None


def load_foreign(stored: dict[str, Tensor], name: str, *, allowed: bool = True, native_error: str = "",
                 overrides: dict[str, Any] | None = None) -> tuple[nn.Module, ModelInfo]:
    """Build the network of ``stored`` (tensors as stored in the file) with spandrel.

    ``native_error`` says why restoregen's own detector declined; it goes into the messages.
    Raises :class:`CheckpointError` naming what the file holds when spandrel is missing, switched
    off, or does not recognise it.
    """
    from ..archs import family_names

    own = family_names()  # what restoregen detects itself
    looks = f"the file holds {describe_keys(stored)}"
    why = f" ({native_error})" if native_error else ""
    version = spandrel_version()
    if version is None:
        raise CheckpointError(f"{name}: not {own}{why}; other architectures load through spandrel, which is not "
                              f"installed (pip install spandrel); {looks}")
    found = _recognise(stored)
    if found is None:
        raise CheckpointError(f"{name}: not an architecture that restoregen ({own}) or spandrel {version} "
                              f"recognises{why}; {looks}")
    support, variant = found
    arch = support.architecture.name
    if not allowed:
        raise CheckpointError(f"{name}: spandrel {version} recognises this as {arch}, but building networks through "
                              f"spandrel is switched off (${ENV_VAR}=0 or allow_spandrel=False); {looks}")
    if overrides:
        raise CheckpointError(f"{name}: {arch} is built by spandrel from the weights alone; constructor overrides "
                              f"({', '.join(overrides)}) apply to restoregen's own networks only")
    try:
        descriptor = support.architecture.load(variant)
    except Exception as error:  # noqa: BLE001 - whatever spandrel raises, the user needs the reason
        raise CheckpointError(f"{name}: spandrel recognised {arch} but could not build it "
                              f"({type(error).__name__}: {error}); {looks}") from None
    from spandrel import ImageModelDescriptor

    if not isinstance(descriptor, ImageModelDescriptor):
        raise CheckpointError(f"{name}: {arch} is a {descriptor.purpose} model that needs a mask besides the image; "
                              "restoregen runs image-to-image networks only")
    model = SpandrelNetwork(descriptor).eval().requires_grad_(False)
    supported = {torch.float32: True, torch.bfloat16: descriptor.supports_bfloat16,
                 torch.float16: descriptor.supports_half}
    hyperparameters = dict(getattr(descriptor.model, "hyperparameters", {}) or {})
    info = ModelInfo(
        arch=arch,
        scale=int(descriptor.scale),
        in_channels=int(descriptor.input_channels),
        size_multiple=tile_grid(descriptor),
        dtypes=tuple(dtype for dtype, ok in supported.items() if ok),
        kwargs=hyperparameters,
        source=name,
        implementation="spandrel",
        subtype=", ".join(descriptor.tags),
        out_channels=int(descriptor.output_channels),
        parameters=sum(p.numel() for p in model.parameters()),
        refused=tuple(dtype for dtype, ok in supported.items() if not ok),
        min_size=int(descriptor.size_requirements.minimum),
        width=int(hyperparameters.get("embed_dim", hyperparameters.get("dim", 64))),  # spandrel's usual names
    )
    return model, info

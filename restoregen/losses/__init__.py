"""Losses by their BasicSR option-file ``type``: ``build_loss(section)``."""

from __future__ import annotations

import importlib

from torch import nn

LOSSES: dict[str, str] = {
    "L1Loss": "pixel:L1Loss",
    "MSELoss": "pixel:MSELoss",
    "CharbonnierLoss": "pixel:CharbonnierLoss",
    "PerceptualLoss": "perceptual:PerceptualLoss",
    "GANLoss": "gan:GANLoss",
}


def build_loss(opt: dict) -> nn.Module:
    """The loss of one option section (``type`` plus the loss's arguments)."""
    kwargs = dict(opt)
    name = kwargs.pop("type")
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    module, cls = LOSSES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(**kwargs)


__all__ = ["LOSSES", "build_loss"]

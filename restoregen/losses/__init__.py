"""Losses by their BasicSR option-file ``type``: ``build_loss(section)``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..config.schema import BOOL, FLOAT, NON_NEGATIVE, POSITIVE, STR, Choice, Opt, OptionType, Section

if TYPE_CHECKING:
    from torch import nn

_REDUCTION = Choice(("none", "mean", "sum"))

# option-file type -> "module:Class" (imported on first use) and the options of its section
LOSSES: dict[str, OptionType] = {
    "L1Loss": OptionType("pixel:L1Loss", {"loss_weight": NON_NEGATIVE, "reduction": _REDUCTION}),
    "MSELoss": OptionType("pixel:MSELoss", {"loss_weight": NON_NEGATIVE, "reduction": _REDUCTION}),
    "CharbonnierLoss": OptionType("pixel:CharbonnierLoss",
                                  {"loss_weight": NON_NEGATIVE, "reduction": _REDUCTION, "eps": POSITIVE}),
    "PerceptualLoss": OptionType("perceptual:PerceptualLoss", {
        "layer_weights": Section({}, extra=FLOAT), "vgg_type": Choice(("vgg11", "vgg13", "vgg16", "vgg19")),
        "use_input_norm": BOOL, "range_norm": BOOL, "perceptual_weight": FLOAT, "style_weight": FLOAT,
        "criterion": Choice(("l1", "l2", "fro")),
        # restoregen: a local torchvision VGG state dict (nothing is downloaded)
        "vgg_weights": Opt(STR),
    }),
    "GANLoss": OptionType("gan:GANLoss", {
        "gan_type": Choice(("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")), "real_label_val": FLOAT,
        "fake_label_val": FLOAT, "loss_weight": NON_NEGATIVE}),
}


def build_loss(opt: dict) -> nn.Module:
    """The loss of one option section (``type`` plus the loss's arguments)."""
    kwargs = dict(opt)
    name = kwargs.pop("type")
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    module, cls = LOSSES[name].target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(**kwargs)


__all__ = ["LOSSES", "build_loss"]

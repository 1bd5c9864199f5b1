"""The optimizers option files name (``train.optim_<net>.type``): torch.optim classes, BasicSR's options."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.schema import BOOL, FLOAT, NON_NEGATIVE, POSITIVE, Bounded, ListOf, OptionType

if TYPE_CHECKING:
    import torch

_ADAM = {"lr": POSITIVE, "weight_decay": NON_NEGATIVE, "betas": ListOf(Bounded(FLOAT, least=0, below=1), 2),
         "eps": POSITIVE, "amsgrad": BOOL}

# option-file type -> class name in torch.optim and the options of its section
OPTIMIZERS: dict[str, OptionType] = {"Adam": OptionType("Adam", _ADAM), "AdamW": OptionType("AdamW", _ADAM)}


def build_optimizer(params, section: dict) -> torch.optim.Optimizer:
    """The optimizer of a validated ``train.optim_<net>`` section over ``params``."""
    import torch

    kwargs = dict(section)
    return getattr(torch.optim, OPTIMIZERS[kwargs.pop("type")].target)(params, **kwargs)


__all__ = ["OPTIMIZERS", "build_optimizer"]

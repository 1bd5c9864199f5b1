"""Recognise a network from its state dict alone (spandrel-style).

``detect(state_dict) -> (arch, kwargs)`` asks each registered network (in registration order)
whether the keys look like it (its ``matches``) and reads the official constructor arguments back
from tensor shapes (its ``recover``), so that ``build(arch, **kwargs).load_state_dict(state_dict)``
works with ``strict=True``. Only shapes are read: meta tensors (or anything with a ``.shape``) will do.

Some arguments leave no trace in the weights. They take the value the released checkpoints use,
listed in each network's ``unrecoverable`` (``restoregen.archs.network(name).unrecoverable``; its
module's docstring says why), and can be overridden by the caller. This module also holds the
shape readers that the networks' ``recover`` functions share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .registry import family_names, networks

__all__ = ["UnknownArchitecture", "Weights", "detect", "divisor", "layer_ratio", "pixelshuffle_scale",
           "square_side", "swinir_frame"]


class UnknownArchitecture(ValueError):
    """The state dict is not one of the networks :func:`detect` knows. ``family`` is set when its
    keys looked like one of them but its shapes did not fit."""

    def __init__(self, message: str, family: str | None = None) -> None:
        super().__init__(message)
        self.family = family


class Weights:
    """Shape queries on a state dict."""

    def __init__(self, state_dict: Mapping[str, Any]) -> None:
        self.sd = state_dict

    def __contains__(self, key: str) -> bool:
        return key in self.sd

    def shape(self, key: str) -> tuple[int, ...]:
        try:
            return tuple(self.sd[key].shape)
        except KeyError:
            raise UnknownArchitecture(f"expected the key {key!r}, which is missing") from None

    def count(self, pattern: str) -> int:
        """``1 + the largest index`` matched by the regex group in ``pattern`` (0 if none)."""
        regex = re.compile(pattern)
        found = [int(m.group(1)) for m in map(regex.match, self.sd) if m]
        return max(found) + 1 if found else 0


def square_side(numel: int, what: str) -> int:
    side = math.isqrt(numel)
    if side * side != numel:
        raise UnknownArchitecture(f"{what} has {numel} entries, not a square")
    return side


def layer_ratio(dim: int, hidden: int) -> float:
    """A ratio ``r`` with ``int(dim * r) == hidden`` (the official modules size layers that way)."""
    ratio = hidden / dim
    return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def divisor(dim: int, reduced: int, default: int) -> int:
    """A divisor ``d`` with ``dim // d == reduced``, preferring ``default``."""
    if dim // default == reduced:
        return default
    for d in (dim // reduced, *range(1, dim + 1)):
        if d > 0 and dim // d == reduced:
            return d
    raise UnknownArchitecture(f"no integer divides {dim} channels down to {reduced}")


def pixelshuffle_scale(w: Weights, prefix: str = "upsample") -> int:
    """Scale of the official ``Upsample``: conv+shuffle(2) stages, or one conv+shuffle(3)."""
    stages = w.count(rf"{re.escape(prefix)}\.(\d+)\.weight$")
    convs = [f"{prefix}.{i}.weight" for i in range(0, stages, 2)]
    if len(convs) == 1 and w.shape(convs[0])[0] == 9 * w.shape(convs[0])[1]:
        return 3
    return 2 ** len(convs)


def swinir_frame(w: Weights) -> dict[str, Any]:
    """Arguments of the SwinIR-style frame shared by HAT and DRCT."""
    embed_dim, in_chans = w.shape("conv_first.weight")[:2]
    if "conv_before_upsample.0.weight" not in w:
        raise UnknownArchitecture("only the 'pixelshuffle' upsampler is implemented by the official network, "
                                  "but conv_before_upsample is missing")
    kwargs: dict[str, Any] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "upscale": pixelshuffle_scale(w),
        "upsampler": "pixelshuffle",
        "resi_connection": "1conv" if "conv_after_body.weight" in w else "identity",
        "patch_norm": "patch_embed.norm.weight" in w,
        "ape": "absolute_pos_embed" in w,
    }
    if kwargs["ape"]:
        kwargs["img_size"] = square_side(w.shape("absolute_pos_embed")[1], "absolute_pos_embed")
    return kwargs


def detect(state_dict: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(official class name, official constructor kwargs)`` of the network that owns ``state_dict``.

    Raises :class:`UnknownArchitecture` when the keys match no registered network (or are inconsistent).
    """
    weights = Weights(state_dict)
    for network in networks():
        if network.detectable and network.matches(weights):
            try:
                return network.name, network.recover(weights)
            except UnknownArchitecture as error:
                raise UnknownArchitecture(f"looks like {network.name}, but {error}", family=network.name) from None
    sample = ", ".join(list(state_dict)[:4]) or "no keys at all"
    raise UnknownArchitecture(f"not a {family_names(None, ' or ')} state dict (first keys: {sample})")


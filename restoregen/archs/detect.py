"""Recognise a network from its state dict alone (spandrel-style).

``detect(state_dict) -> (arch, kwargs)`` identifies HAT, DRCT or DLGSANet from key names and reads
the official constructor arguments back from tensor shapes, so that
``build(arch, **kwargs).load_state_dict(state_dict)`` works with ``strict=True``. Only shapes are
read: meta tensors (or anything with a ``.shape``) will do.

Some arguments leave no trace in the weights. They take the value the released checkpoints use,
listed per family in :data:`UNRECOVERABLE`, and can be overridden by the caller:

- every family: ``img_range`` (1.0);
- HAT: ``img_size`` (64; read from ``absolute_pos_embed`` when ``ape=True``; otherwise it only decides
  whether shifted windows are switched off, for ``img_size <= window_size``), ``conv_scale``;
- DRCT: the values in ``depths`` (official DRCT uses only its length; ``[6] * n``), and
  ``compress_ratio``, ``squeeze_factor``, ``conv_scale``, ``overlap_ratio``, which DRCT accepts but does
  not use;
- DLGSANet: ``tlc_flag`` (True) and ``tlc_kernel`` (96/72/48 for x2/x3/x4, the official test
  settings), ``activation`` ("relu"), and ``buildblock_type`` "edge" versus "sparseedge" (same
  weights; softmax versus ReLU attention): "sparseedge", which every released model uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["UNRECOVERABLE", "UnknownArchitecture", "detect"]

# Arguments that leave no trace in the weights, with the value detect() gives them.
UNRECOVERABLE: dict[str, dict[str, Any]] = {
    "HAT": {"img_size": 64, "img_range": 1.0, "conv_scale": 0.01},
    "DRCT": {"img_range": 1.0, "depths": "[6] * len(num_heads)", "compress_ratio": 3, "squeeze_factor": 30,
             "conv_scale": 0.01, "overlap_ratio": 0.5},
    "DLGSANet": {"img_range": 1.0, "tlc_flag": True, "tlc_kernel": "96 / 72 / 48 for x2 / x3 / x4",
                 "activation": "relu", "buildblock_type": "sparseedge (if the weights hold both block kinds)"},
}
DLGSANET_TLC_KERNEL = {2: 96, 3: 72, 4: 48}  # official test settings per scale
NUM_FEAT = 64  # width of the pixel-shuffle reconstruction, fixed in all three official networks


class UnknownArchitecture(ValueError):
    """The state dict is not one of the networks :func:`detect` knows. ``family`` is set when its
    keys looked like one of them but its shapes did not fit."""

    def __init__(self, message: str, family: str | None = None) -> None:
        super().__init__(message)
        self.family = family


class _Weights:
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


def _square_side(numel: int, what: str) -> int:
    side = math.isqrt(numel)
    if side * side != numel:
        raise UnknownArchitecture(f"{what} has {numel} entries, not a square")
    return side


def _ratio(dim: int, hidden: int) -> float:
    """A ratio ``r`` with ``int(dim * r) == hidden`` (the official modules size layers that way)."""
    ratio = hidden / dim
    return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def _divisor(dim: int, reduced: int, default: int) -> int:
    """A divisor ``d`` with ``dim // d == reduced``, preferring ``default``."""
    if dim // default == reduced:
        return default
    for d in (dim // reduced, *range(1, dim + 1)):
        if d > 0 and dim // d == reduced:
            return d
    raise UnknownArchitecture(f"no integer divides {dim} channels down to {reduced}")


def _pixelshuffle_scale(w: _Weights, prefix: str = "upsample") -> int:
    """Scale of the official ``Upsample``: conv+shuffle(2) stages, or one conv+shuffle(3)."""
    stages = w.count(rf"{re.escape(prefix)}\.(\d+)\.weight$")
    convs = [f"{prefix}.{i}.weight" for i in range(0, stages, 2)]
    if len(convs) == 1 and w.shape(convs[0])[0] == 9 * w.shape(convs[0])[1]:
        return 3
    return 2 ** len(convs)


def _swinir_frame(w: _Weights) -> dict[str, Any]:
    """Arguments of the SwinIR-style frame shared by HAT and DRCT."""
    embed_dim, in_chans = w.shape("conv_first.weight")[:2]
    if "conv_before_upsample.0.weight" not in w:
        raise UnknownArchitecture("only the 'pixelshuffle' upsampler is implemented by the official network, "
                                  "but conv_before_upsample is missing")
    kwargs: dict[str, Any] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "upscale": _pixelshuffle_scale(w),
        "upsampler": "pixelshuffle",
        "resi_connection": "1conv" if "conv_after_body.weight" in w else "identity",
        "patch_norm": "patch_embed.norm.weight" in w,
        "ape": "absolute_pos_embed" in w,
    }
    if kwargs["ape"]:
        kwargs["img_size"] = _square_side(w.shape("absolute_pos_embed")[1], "absolute_pos_embed")
    return kwargs


def _hat(w: _Weights) -> dict[str, Any]:
    kwargs = {"img_size": 64, **_swinir_frame(w), "img_range": 1.0, "conv_scale": 0.01}
    dim = kwargs["embed_dim"]
    layers = w.count(r"layers\.(\d+)\.")
    group = "layers.0.residual_group."
    block = group + "blocks.0."
    window = (_square_side(w.shape(block + "attn.relative_position_bias_table")[0], "the window bias table") + 1) // 2
    overlap_window = _square_side(w.shape(group + "overlap_attn.relative_position_bias_table")[0],
                                  "the OCAB bias table") - window + 1
    kwargs.update(
        depths=[w.count(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.") for i in range(layers)],
        num_heads=[w.shape(f"layers.{i}.residual_group.overlap_attn.relative_position_bias_table")[1]
                   for i in range(layers)],
        window_size=window,
        overlap_ratio=(overlap_window - window) / window,
        compress_ratio=_divisor(dim, w.shape(block + "conv_block.cab.0.weight")[0], 3),
        squeeze_factor=_divisor(dim, w.shape(block + "conv_block.cab.3.attention.1.weight")[0], 30),
        mlp_ratio=_ratio(dim, w.shape(block + "mlp.fc1.weight")[0]),
        qkv_bias=block + "attn.qkv.bias" in w,
    )
    return kwargs


def _drct(w: _Weights) -> dict[str, Any]:
    kwargs = {"img_size": 64, **_swinir_frame(w), "img_range": 1.0}
    dim = kwargs["embed_dim"]
    layers = w.count(r"layers\.(\d+)\.swin1\.")
    first = "layers.0.swin1."
    window = (_square_side(w.shape(first + "attn.relative_position_bias_table")[0], "the window bias table") + 1) // 2
    if not kwargs["ape"]:  # img_size fixes the shape of the saved shift masks: (windows per patch, N, N)
        if "layers.0.swin2.attn_mask" in w:
            kwargs["img_size"] = window * _square_side(w.shape("layers.0.swin2.attn_mask")[0], "attn_mask")
        elif first + "attn.relative_position_index" in w:
            kwargs["img_size"] = window  # buffers saved but no mask: the training patch was one window
    num_heads = [w.shape(f"layers.{i}.swin1.attn.relative_position_bias_table")[1] for i in range(layers)]
    kwargs.update(
        depths=[6] * layers,
        num_heads=num_heads,
        window_size=window,
        gc=w.shape("layers.0.adjust1.weight")[0],
        mlp_ratio=_ratio(dim, w.shape(first + "mlp.fc1.weight")[0]),
        qkv_bias=first + "attn.qkv.bias" in w,
        compress_ratio=3, squeeze_factor=30, conv_scale=0.01, overlap_ratio=0.5,
    )
    return kwargs


def _ffn(w: _Weights, prefix: str, dim: int) -> tuple[str, float]:
    """(type, expansion factor) of a DLGSANet feed-forward network: GDFN or BaseFFN."""
    if prefix + "project_in.weight" in w:
        return "GDFN", _ratio(dim, w.shape(prefix + "project_in.weight")[0] // 2)
    return "BaseFFN", _ratio(dim, w.shape(prefix + "body.0.weight")[0])


def _dlgsanet(w: _Weights) -> dict[str, Any]:
    dim, in_chans = w.shape("overlap_embed.0.proj.weight")[:2]
    body = "deep_feature_extraction."
    entries = w.count(rf"{re.escape(body)}(\d+)\.")
    norms = [i for i in range(entries) if f"{body}{i}.body.weight" in w and len(w.shape(f"{body}{i}.body.weight")) == 1]
    groups = [i for i in range(entries) if w.count(rf"{re.escape(body)}{i}\.body\.(\d+)\.") > 0]
    if not groups:
        raise UnknownArchitecture("DLGSANet without any BuildBlock")
    layers = f"{body}{groups[0]}.body."
    n_layers = w.count(rf"{re.escape(layers)}(\d+)\.")
    local = [j for j in range(n_layers) if f"{layers}{j}.norm1.body.weight" in w]
    glob = [j for j in range(n_layers) if f"{layers}{j}.norm3.body.weight" in w]
    kwargs: dict[str, Any] = {
        "in_chans": in_chans, "dim": dim, "groups": len(groups), "blocks": max(len(local), len(glob)),
        "buildblock_type": "sparseedge" if local and glob else "idynamic" if local else "restormer",
        "body_norm": bool(norms), "img_range": 1.0, "activation": "relu", "tlc_flag": True,
    }
    if local:
        block = f"{layers}{local[0]}."
        dynamic = block + "IDynamicDWConv.conv.conv1.0.weight" in w
        kwargs["idynamic"] = dynamic
        if dynamic:
            window = w.shape(block + "IDynamicDWConv.conv.conv1.1.weight")[-1]
            kernel_groups = w.shape(block + "IDynamicDWConv.conv.conv2.0.weight")[0] // (window * window)
            kwargs["idynamic_num_heads"] = _divisor(dim, kernel_groups, 6)
        else:
            window = w.shape(block + "IDynamicDWConv.conv.weight")[-1]
        kwargs["window_size"] = window
        kwargs["idynamic_ffn_type"], kwargs["idynamic_ffn_expansion_factor"] = _ffn(w, block + "IDynamic_ffn.", dim)
    if glob:
        block = f"{layers}{glob[0]}."
        kwargs["restormer_num_heads"] = w.shape(block + "restormer_attn.temperature")[0]
        kwargs["restormer_ffn_type"], kwargs["restormer_ffn_expansion_factor"] = _ffn(w, block + "restormer_ffn.", dim)
    if "conv_before_upsample.0.weight" in w:
        kwargs.update(upsampler="pixelshuffle", upscale=_pixelshuffle_scale(w))
    elif "upsample.0.weight" in w:  # UpsampleOneStep: one conv to scale**2 * in_chans channels
        kwargs.update(upsampler="pixelshuffledirect",
                      upscale=_square_side(w.shape("upsample.0.weight")[0] // in_chans, "the upsampling conv"))
    else:
        kwargs.update(upsampler="", upscale=1)
    kwargs["tlc_kernel"] = DLGSANET_TLC_KERNEL.get(kwargs["upscale"], 48)
    return kwargs


# (name, does the state dict look like it, recover the kwargs)
_FAMILIES: list[tuple[str, Callable[[_Weights], bool], Callable[[_Weights], dict[str, Any]]]] = [
    ("HAT", lambda w: "layers.0.residual_group.overlap_attn.qkv.weight" in w, _hat),
    ("DRCT", lambda w: "layers.0.swin1.attn.qkv.weight" in w and "layers.0.adjust1.weight" in w, _drct),
    ("DLGSANet", lambda w: "overlap_embed.0.proj.weight" in w, _dlgsanet),
]


def detect(state_dict: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(official class name, official constructor kwargs)`` of the network that owns ``state_dict``.

    Raises :class:`UnknownArchitecture` when the keys match no known family (or are inconsistent).
    """
    weights = _Weights(state_dict)
    for name, matches, recover in _FAMILIES:
        if matches(weights):
            try:
                return name, recover(weights)
            except UnknownArchitecture as error:
                raise UnknownArchitecture(f"looks like {name}, but {error}", family=name) from None
    sample = ", ".join(list(state_dict)[:4]) or "no keys at all"
    raise UnknownArchitecture(f"not a HAT, DRCT or DLGSANet state dict (first keys: {sample})")

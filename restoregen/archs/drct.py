"""DRCT, the Dense-residual-connected Transformer (Hsu et al., "DRCT: Saving Image Super-Resolution
away from Information Bottleneck", CVPRW 2024), with the official constructor and state-dict names.

Each residual dense group (RDG) runs five Swin blocks densely connected: block ``i`` sees the
group input and the ``gc``-channel outputs of all blocks before it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..attention import to_pair
from .blocks import SR_NETWORK, SwinBlock, SwinSRFrame, drop_path_rates, init_transformer_weights
from .detect import Weights, layer_ratio, square_side, swinir_frame
from .registry import register

RDG_BLOCKS = 5
RESIDUAL_SCALE = 0.2  # the group output is scaled by 0.2 before the residual (official constant)


class RDG(nn.Module):
    """Residual dense group: ``swin1..5`` each followed by a 1x1 convolution ``adjust1..5``.

    ``adjust1..4`` map to ``gc`` channels (then LeakyReLU 0.2) and grow the dense input;
    ``adjust5`` maps back to ``dim`` without activation.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, resolution: tuple[int, int],
                 mlp_ratio: float, gc: int, qkv_bias: bool, qk_scale: float | None, drop: float, attn_drop: float,
                 drop_path: float, norm_layer: type[nn.Module], use_checkpoint: bool) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        for i in range(RDG_BLOCKS):
            width = dim + i * gc
            # official quirk: blocks after the first use num_heads - width % num_heads heads
            # (6 heads at dim 180, gc 32 -> 6/4/2/6/4)
            heads = num_heads if i == 0 else num_heads - width % num_heads
            if width % heads:
                raise ValueError(f"DRCT: block swin{i + 1} has {width} channels, not divisible into {heads} heads")
            # official quirks: blocks 4 and 5 use mlp_ratio 1; every block gets the group's first
            # stochastic-depth rate; shifted blocks store their mask at img_size
            block = SwinBlock(width, heads, window_size, shift_size=shift_size if i % 2 else 0,
                              mlp_ratio=mlp_ratio if i < 3 else 1, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop,
                              attn_drop=attn_drop, drop_path=drop_path, norm_layer=norm_layer, store_index=True,
                              mask_resolution=resolution)
            self.add_module(f"swin{i + 1}", block)
            self.add_module(f"adjust{i + 1}", nn.Conv2d(width, gc if i < RDG_BLOCKS - 1 else dim, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for i in range(1, RDG_BLOCKS + 1):
            block, adjust = getattr(self, f"swin{i}"), getattr(self, f"adjust{i}")
            y = torch.cat(features, dim=-1)
            if i == RDG_BLOCKS:  # the group output: adjust5(swin5(...)) * 0.2 + x
                return self._adjusted(block, adjust, y, RESIDUAL_SCALE, x)
            features.append(self.lrelu(self._adjusted(block, adjust, y)))

    def _adjusted(self, block: SwinBlock, adjust: nn.Conv2d, y: Tensor, scale: float = 1.0,
                  residual: Tensor | None = None) -> Tensor:
        """``adjust(block(y)) * scale [+ residual]`` (the adjust convolution folded into the block
        in inference, see :meth:`SwinBlock.forward_projected`)."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(block.forward_projected, y, adjust, scale, residual, use_reentrant=False)
        return block.forward_projected(y, adjust, scale, residual)


# Arguments that leave no trace in the weights: ``img_range``; the values in ``depths`` (only its
# length, the number of RDGs, counts); ``compress_ratio``, ``squeeze_factor``, ``conv_scale`` and
# ``overlap_ratio``, which DRCT accepts but does not use. ``img_size`` is read from the stored
# shift masks (64 when none are stored).
UNRECOVERABLE = {"img_range": 1.0, "depths": "[6] * len(num_heads)", "compress_ratio": 3, "squeeze_factor": 30,
                 "conv_scale": 0.01, "overlap_ratio": 0.5}


def _recover(w: Weights) -> dict[str, Any]:
    kwargs = {"img_size": 64, **swinir_frame(w), "img_range": 1.0}
    dim = kwargs["embed_dim"]
    layers = w.count(r"layers\.(\d+)\.swin1\.")
    first = "layers.0.swin1."
    window = (square_side(w.shape(first + "attn.relative_position_bias_table")[0], "the window bias table") + 1) // 2
    if not kwargs["ape"]:  # img_size fixes the shape of the saved shift masks: (windows per patch, N, N)
        if "layers.0.swin2.attn_mask" in w:
            kwargs["img_size"] = window * square_side(w.shape("layers.0.swin2.attn_mask")[0], "attn_mask")
        elif first + "attn.relative_position_index" in w:
            kwargs["img_size"] = window  # buffers saved but no mask: the training patch was one window
    num_heads = [w.shape(f"layers.{i}.swin1.attn.relative_position_bias_table")[1] for i in range(layers)]
    kwargs.update(
        depths=[6] * layers,
        num_heads=num_heads,
        window_size=window,
        gc=w.shape("layers.0.adjust1.weight")[0],
        mlp_ratio=layer_ratio(dim, w.shape(first + "mlp.fc1.weight")[0]),
        qkv_bias=first + "attn.qkv.bias" in w,
        compress_ratio=3, squeeze_factor=30, conv_scale=0.01, overlap_ratio=0.5,
    )
    return kwargs


@register(matches=lambda w: "layers.0.swin1.attn.qkv.weight" in w and "layers.0.adjust1.weight" in w,
          recover=_recover, unrecoverable=UNRECOVERABLE, **SR_NETWORK, width=lambda model: model.embed_dim,
          fixtures="drct",
          recipes={"DRCTModel": "sr:SRRecipe", "RealDRCTMSEModel": "sr:RealSRRecipe",
                   "RealDRCTGANModel": "sr:SRGANRecipe"})
class DRCT(SwinSRFrame):
    """Dense-residual-connected Transformer; arguments are those of the official ``DRCT`` class.

    ``compress_ratio``, ``squeeze_factor``, ``conv_scale`` and ``overlap_ratio`` are accepted and
    unused, as in the official class (its option files pass them); only ``len(depths)`` counts
    (one RDG per entry). ``img_size`` sets the size at which the shifted-window masks are stored
    and, with ``ape=True``, the input size. Inputs of any size are reflect-padded to a multiple of
    ``window_size``.
    """

    def __init__(self, img_size: int | tuple[int, int] = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 96, depths: tuple[int, ...] = (6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6),
                 window_size: int = 7, compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, norm_layer: type[nn.Module] = nn.LayerNorm, ape: bool = False,
                 patch_norm: bool = True, use_checkpoint: bool = False, upscale: int = 2, img_range: float = 1.0,
                 upsampler: str = "", resi_connection: str = "1conv", gc: int = 32) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"DRCT: depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        rows, cols = to_pair(img_size)
        resolution = (rows // patch_size, cols // patch_size)
        # official rule: when the training patch fits one window, the window shrinks to it, unshifted
        window, shift_size = window_size, window_size // 2
        if min(resolution) <= window_size:
            window, shift_size = min(resolution), 0
        self.window_size = window
        self.size_multiple = math.lcm(window_size, window)
        self.gc = gc

        self._build_head(in_chans, embed_dim, img_range, patch_norm, norm_layer, ape, resolution, drop_rate)
        self.layers = nn.ModuleList(
            RDG(embed_dim, heads, window, shift_size, resolution, mlp_ratio, gc, qkv_bias, qk_scale, drop_rate,
                attn_drop_rate, rates[0] if rates else 0.0, norm_layer, use_checkpoint)
            for heads, rates in zip(num_heads, drop_path_rates(depths, drop_path_rate), strict=False))
        self._build_tail(embed_dim, upscale, upsampler, resi_connection, norm_layer, "DRCT")
        self.apply(init_transformer_weights)

    def forward_body(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

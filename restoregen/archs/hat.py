"""HAT, the Hybrid Attention Transformer (Chen et al., "Activating More Pixels in Image
Super-Resolution Transformer", CVPR 2023), with the official constructor and state-dict names.

Each residual hybrid attention group (RHAG) runs hybrid attention blocks (a Swin block with a
parallel channel-attention convolution), then one overlapping cross-attention block (OCAB), then a
3x3 convolution and its residual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..attention import (
    cached_relative_position_bias,
    linear_epilogue,
    overlap_relative_position_index,
    overlapping_window_attention,
    relative_position_index,
)
from .blocks import (
    CAB,
    SR_NETWORK,
    Mlp,
    SwinBlock,
    SwinSRFrame,
    drop_path_rates,
    init_transformer_weights,
    residual_conv,
    run_blocks,
)
from .detect import Weights, divisor, layer_ratio, square_side, swinir_frame
from .registry import register


class OCAB(nn.Module):
    """Overlapping cross-attention: each window's queries attend to a larger window around it."""

    def __init__(self, dim: int, window_size: int, overlap_ratio: float, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, mlp_ratio: float = 2,
                 norm_layer: type[nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.window_size = window_size
        self.overlap_window = int(window_size * overlap_ratio) + window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.norm1 = norm_layer(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        table_side = window_size + self.overlap_window - 1
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_side * table_side, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, index: Tensor) -> Tensor:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        table = self.relative_position_bias_table
        out = overlapping_window_attention(q, k, v, table, index, self.window_size, self.overlap_window,
                                           self.num_heads, self.scale,
                                           bias=cached_relative_position_bias(self, table, index))
        x = linear_epilogue(out, self.proj, residual=x)
        return self.mlp(self.norm2(x), residual=x)


class AttenBlocks(nn.Module):
    """The attention blocks of one RHAG: ``depth`` hybrid attention blocks, then an OCAB."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, shift_size: int, compress_ratio: int,
                 squeeze_factor: int, conv_scale: float, overlap_ratio: float, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, drop: float, attn_drop: float, drop_path: list[float],
                 norm_layer: type[nn.Module], use_checkpoint: bool) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, shift_size=0 if i % 2 == 0 else shift_size, mlp_ratio=mlp_ratio,
                      qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop, attn_drop=attn_drop, drop_path=drop_path[i],
                      norm_layer=norm_layer, conv_block=CAB(dim, compress_ratio, squeeze_factor), conv_scale=conv_scale)
            for i in range(depth))
        self.overlap_attn = OCAB(dim, window_size, overlap_ratio, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                 mlp_ratio=mlp_ratio, norm_layer=norm_layer)

    def forward(self, x: Tensor, index_sa: Tensor, index_oca: Tensor) -> Tensor:
        x = run_blocks(self.blocks, x, self.use_checkpoint, None, index_sa)
        return self.overlap_attn(x, index_oca)


class RHAG(nn.Module):
    """Residual hybrid attention group: attention blocks, a 3x3 convolution, a residual."""

    def __init__(self, dim: int, resi_connection: str, **blocks_kwargs) -> None:
        super().__init__()
        self.residual_group = AttenBlocks(dim=dim, **blocks_kwargs)
        self.conv = residual_conv(dim, resi_connection, "HAT")

    def forward(self, x: Tensor, index_sa: Tensor, index_oca: Tensor) -> Tensor:
        y = self.residual_group(x, index_sa, index_oca)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


# Arguments that leave no trace in the weights: ``img_size`` (read from ``absolute_pos_embed`` when
# ``ape=True``; otherwise it only decides whether shifted windows are switched off, for
# ``img_size <= window_size``), ``img_range`` and ``conv_scale``; the released checkpoints' values.
UNRECOVERABLE = {"img_size": 64, "img_range": 1.0, "conv_scale": 0.01}


def _recover(w: Weights) -> dict[str, Any]:
    kwargs = {"img_size": 64, **swinir_frame(w), "img_range": 1.0, "conv_scale": 0.01}
    dim = kwargs["embed_dim"]
    layers = w.count(r"layers\.(\d+)\.")
    group = "layers.0.residual_group."
    block = group + "blocks.0."
    window = (square_side(w.shape(block + "attn.relative_position_bias_table")[0], "the window bias table") + 1) // 2
    overlap_window = square_side(w.shape(group + "overlap_attn.relative_position_bias_table")[0],
                                  "the OCAB bias table") - window + 1
    kwargs.update(
        depths=[w.count(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.") for i in range(layers)],
        num_heads=[w.shape(f"layers.{i}.residual_group.overlap_attn.relative_position_bias_table")[1]
                   for i in range(layers)],
        window_size=window,
        overlap_ratio=(overlap_window - window) / window,
        compress_ratio=divisor(dim, w.shape(block + "conv_block.cab.0.weight")[0], 3),
        squeeze_factor=divisor(dim, w.shape(block + "conv_block.cab.3.attention.1.weight")[0], 30),
        mlp_ratio=layer_ratio(dim, w.shape(block + "mlp.fc1.weight")[0]),
        qkv_bias=block + "attn.qkv.bias" in w,
    )
    return kwargs


@register(matches=lambda w: "layers.0.residual_group.overlap_attn.qkv.weight" in w, recover=_recover,
          unrecoverable=UNRECOVERABLE, **SR_NETWORK, width=lambda model: model.embed_dim, fixtures="hat",
          recipes={"HATModel": "sr:SRRecipe", "RealHATMSEModel": "sr:RealSRRecipe",
                   "RealHATGANModel": "sr:SRGANRecipe"})
class HAT(SwinSRFrame):
    """Hybrid Attention Transformer; arguments are those of the official ``HAT`` class.

    ``img_size`` and ``patch_size`` only matter with ``ape=True`` (the absolute position embedding
    then fixes the input size) and for the official small-``img_size`` rule below. Inputs of any
    size are reflect-padded to a multiple of ``window_size``.
    """

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3, embed_dim: int = 96,
                 depths: tuple[int, ...] = (6, 6, 6, 6), num_heads: tuple[int, ...] = (6, 6, 6, 6),
                 window_size: int = 7, compress_ratio: int = 3, squeeze_factor: int = 30, conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, norm_layer: type[nn.Module] = nn.LayerNorm, ape: bool = False,
                 patch_norm: bool = True, use_checkpoint: bool = False, upscale: int = 2, img_range: float = 1.0,
                 upsampler: str = "", resi_connection: str = "1conv") -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"HAT: depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        self.window_size = self.size_multiple = window_size
        self.overlap_ratio = overlap_ratio
        overlap_window = int(window_size * overlap_ratio) + window_size
        resolution = img_size // patch_size
        shift_size = window_size // 2
        if resolution <= window_size:  # official rule: no shifted windows when the training patch fits one window
            if resolution < window_size:
                raise ValueError(f"HAT: img_size {img_size} is smaller than window_size {window_size}")
            shift_size = 0

        self.register_buffer("relative_position_index_SA", relative_position_index((window_size, window_size)).clone())
        self.register_buffer("relative_position_index_OCA",
                             overlap_relative_position_index(window_size, overlap_window).clone())
        self._build_head(in_chans, embed_dim, img_range, patch_norm, norm_layer, ape, resolution, drop_rate)
        self.layers = nn.ModuleList(
            RHAG(embed_dim, resi_connection, depth=depth, num_heads=heads, window_size=window_size,
                 shift_size=shift_size, compress_ratio=compress_ratio, squeeze_factor=squeeze_factor,
                 conv_scale=conv_scale, overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                 qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rates,
                 norm_layer=norm_layer, use_checkpoint=use_checkpoint)
            for depth, heads, rates in zip(depths, num_heads, drop_path_rates(depths, drop_path_rate), strict=False))
        self._build_tail(embed_dim, upscale, upsampler, resi_connection, norm_layer, "HAT")
        self.apply(init_transformer_weights)

    def forward_body(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, self.relative_position_index_SA, self.relative_position_index_OCA)
        return x

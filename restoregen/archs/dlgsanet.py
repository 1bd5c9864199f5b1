"""DLGSANet (Li et al., "DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for
Image Super-Resolution", ICCV 2023), with the official constructor and state-dict names.

Each group (``BuildBlock``) alternates two kinds of pre-norm blocks on a ``(B, C, H, W)`` map:
the multi-head dynamic local self-attention (per-pixel depthwise kernels predicted by a small
hypernetwork) and the sparse global self-attention (ReLU channel attention, computed at test time
on overlapping crops with TLC); each is followed by a gated feed-forward network (GDFN).
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import channel_self_attention, dynamic_depthwise_conv
from .blocks import SR_NETWORK, SRNetwork
from .detect import UnknownArchitecture, Weights, divisor, layer_ratio, pixelshuffle_scale, square_side
from .registry import register

BUILDBLOCK_TYPES = ("edge", "sparseedge", "idynamic", "restormer")
FFN_TYPES = ("GDFN", "BaseFFN")
SPARSE_ACTIVATIONS = ("relu", "gelu", "sigmoid", "identity")
RESTORMER_TLC_KERNEL = 48  # official quirk: softmax (Restormer) blocks never get tlc_kernel, so TLC uses 48


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map (Restormer's ``WithBias`` LayerNorm)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class GDFN(nn.Module):
    """Restormer's gated depthwise-conv feed-forward: ``project_out(gelu(x1) * x2)``."""

    def __init__(self, dim: int, expansion_factor: float, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)  # exact (erf) GELU, as the official F.gelu


class BaseFFN(nn.Module):
    """SwinIR's feed-forward as 1x1 convolutions: ``conv -> GELU -> conv``."""

    def __init__(self, dim: int, expansion_factor: float, bias: bool = True) -> None:
        super().__init__()
        hidden = int(dim * expansion_factor)
        self.body = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=bias), nn.GELU(), nn.Conv2d(hidden, dim, 1, bias=bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def feed_forward(ffn_type: str, dim: int, expansion_factor: float) -> nn.Module:
    if ffn_type == "GDFN":
        return GDFN(dim, expansion_factor)
    if ffn_type == "BaseFFN":
        return BaseFFN(dim, expansion_factor)
    raise ValueError(f"DLGSANet: feed-forward type {ffn_type!r} is not supported; use one of {FFN_TYPES}")


class DynamicDWConv(nn.Module):
    """Dynamic depthwise convolution (official ``IDynamicDWConv``).

    A hypernetwork (1x1 conv to ``channels / 4``, ``k x k`` depthwise conv, 1x1 conv) predicts one
    ``k x k`` kernel per pixel for every group of ``group_channels`` channels (a "head"); the
    kernels are applied by :func:`restoregen.attention.dynamic_depthwise_conv`.
    """

    reduction = 4

    def __init__(self, channels: int, kernel_size: int, group_channels: int, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"DLGSANet: window_size {kernel_size} must be odd (the dynamic kernels are centred)")
        if channels % group_channels:
            raise ValueError(f"DLGSANet: dim {channels} is not a multiple of idynamic_num_heads {group_channels}")
        self.kernel_size = kernel_size
        self.groups = channels // group_channels
        hidden = channels // self.reduction
        self.conv1 = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=bias),
        )
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, kernel_size**2 * self.groups, 1, bias=bias))
        self.method: str | None = None  # "shift", "unfold", or None: by the attention backend

    def forward(self, x: Tensor) -> Tensor:
        b, _, height, width = x.shape
        weight = self.conv2(self.conv1(x)).view(b, self.groups, self.kernel_size, self.kernel_size, height, width)
        return dynamic_depthwise_conv(x, weight, self.method)


class DynamicLocalAttention(nn.Module):
    """Multi-head dynamic local self-attention (official ``IDynamicDWConvBlock``): ``conv1(conv(conv0(x)))``
    with a dynamic (or, with ``dynamic=False``, a static) depthwise ``conv`` between two 1x1 convolutions."""

    def __init__(self, dim: int, window_size: int, dynamic: bool, heads: int, bias: bool = True) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        if dynamic:
            self.conv = DynamicDWConv(dim, window_size, heads, bias=bias)
        else:
            self.conv = nn.Conv2d(dim, dim, window_size, 1, window_size // 2, groups=dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.conv(self.conv0(x)))


class ChannelSelfAttention(nn.Module):
    """Channel self-attention (official ``SparseAttention`` with ReLU, ``Attention`` with softmax).

    q, k, v come from a 1x1 and a 3x3 depthwise convolution; in eval mode with ``tlc_flag`` the
    attention runs on overlapping ``tlc_kernel`` crops and is averaged (TLC), for any batch size.
    """

    def __init__(self, dim: int, num_heads: int, activation: str, tlc_flag: bool, tlc_kernel: int,
                 bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"DLGSANet: dim {dim} is not a multiple of restormer_num_heads {num_heads}")
        self.num_heads = num_heads
        self.activation = activation
        self.tlc_flag = tlc_flag
        self.tlc_kernel = tlc_kernel
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        tlc_kernel = self.tlc_kernel if self.tlc_flag and not self.training else None  # TLC at test time only
        out = channel_self_attention(qkv, self.num_heads, self.temperature, self.activation, tlc_kernel)
        return self.project_out(out)


class PreNormBlock(nn.Module):
    """``x + mixer(norm(x))``, then ``x + ffn(norm(x))``, channel LayerNorms before each.

    Subclasses name the four parts as the official checkpoints do (``parts``).
    """

    parts: tuple[str, str, str, str]

    def __init__(self, dim: int, mixer: nn.Module, ffn: nn.Module) -> None:
        super().__init__()
        for name, module in zip(self.parts, (LayerNorm2d(dim), mixer, LayerNorm2d(dim), ffn), strict=True):
            self.add_module(name, module)

    def forward(self, x: Tensor) -> Tensor:
        norm_mixer, mixer, norm_ffn, ffn = (getattr(self, name) for name in self.parts)
        x = mixer(norm_mixer(x)) + x
        return ffn(norm_ffn(x)) + x


class IDynamicLayerBlock(PreNormBlock):
    """Dynamic local self-attention block."""

    parts = ("norm1", "IDynamicDWConv", "norm2", "IDynamic_ffn")

    def __init__(self, dim: int, window_size: int, num_heads: int, ffn_type: str, ffn_expansion_factor: float,
                 dynamic: bool) -> None:
        super().__init__(dim, DynamicLocalAttention(dim, window_size, dynamic, num_heads),
                         feed_forward(ffn_type, dim, ffn_expansion_factor))


class GlobalLayerBlock(PreNormBlock):
    """Channel self-attention block (official ``SparseAttentionLayerBlock`` / ``RestormerLayerBlock``)."""

    parts = ("norm3", "restormer_attn", "norm4", "restormer_ffn")

    def __init__(self, dim: int, num_heads: int, ffn_type: str, ffn_expansion_factor: float, tlc_flag: bool,
                 tlc_kernel: int, activation: str) -> None:
        super().__init__(dim, ChannelSelfAttention(dim, num_heads, activation, tlc_flag, tlc_kernel),
                         feed_forward(ffn_type, dim, ffn_expansion_factor))


class BuildBlock(nn.Module):
    """One residual group: ``blocks`` repetitions of its block pattern, a 3x3 convolution, a residual.

    Patterns: ``sparseedge`` = dynamic local + sparse (ReLU) global attention (every released
    model), ``edge`` = dynamic local + softmax global attention, ``idynamic`` and ``restormer``
    = one kind only.
    """

    def __init__(self, dim: int, blocks: int, buildblock_type: str, window_size: int, idynamic_num_heads: int,
                 idynamic_ffn_type: str, idynamic_ffn_expansion_factor: float, idynamic: bool,
                 restormer_num_heads: int, restormer_ffn_type: str, restormer_ffn_expansion_factor: float,
                 tlc_flag: bool, tlc_kernel: int, activation: str) -> None:
        super().__init__()

        def local() -> nn.Module:
            return IDynamicLayerBlock(dim, window_size, idynamic_num_heads, idynamic_ffn_type,
                                      idynamic_ffn_expansion_factor, idynamic)

        def global_(kernel: int, act: str) -> nn.Module:
            return GlobalLayerBlock(dim, restormer_num_heads, restormer_ffn_type, restormer_ffn_expansion_factor,
                                    tlc_flag, kernel, act)

        patterns = {
            "edge": lambda: [local(), global_(RESTORMER_TLC_KERNEL, "softmax")],
            "sparseedge": lambda: [local(), global_(tlc_kernel, activation)],
            "idynamic": lambda: [local()],
            "restormer": lambda: [global_(RESTORMER_TLC_KERNEL, "softmax")],
        }
        if buildblock_type not in patterns:
            raise ValueError(f"DLGSANet: buildblock_type {buildblock_type!r} is not supported; "
                             f"use one of {BUILDBLOCK_TYPES}")
        if buildblock_type == "sparseedge" and activation not in SPARSE_ACTIVATIONS:
            raise ValueError(f"DLGSANet: activation {activation!r} is not supported; use one of {SPARSE_ACTIVATIONS}")
        body = [block for _ in range(blocks) for block in patterns[buildblock_type]()]
        self.body = nn.Sequential(*body, nn.Conv2d(dim, dim, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution embedding, without bias."""

    def __init__(self, in_chans: int, embed_dim: int, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, 3, 1, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


# Arguments that leave no trace in the weights: ``img_range``; ``tlc_flag`` and ``tlc_kernel`` (the
# official test settings); ``activation``; and ``buildblock_type`` "edge" versus "sparseedge" (same
# weights; softmax versus ReLU attention): "sparseedge", which every released model uses.
UNRECOVERABLE = {"img_range": 1.0, "tlc_flag": True, "tlc_kernel": "96 / 72 / 48 for x2 / x3 / x4",
                 "activation": "relu", "buildblock_type": "sparseedge (if the weights hold both block kinds)"}
TLC_KERNEL = {2: 96, 3: 72, 4: 48}  # official test settings per scale


def _ffn(w: Weights, prefix: str, dim: int) -> tuple[str, float]:
    """(type, expansion factor) of a DLGSANet feed-forward network: GDFN or BaseFFN."""
    if prefix + "project_in.weight" in w:
        return "GDFN", layer_ratio(dim, w.shape(prefix + "project_in.weight")[0] // 2)
    return "BaseFFN", layer_ratio(dim, w.shape(prefix + "body.0.weight")[0])


def _recover(w: Weights) -> dict[str, Any]:
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
            kwargs["idynamic_num_heads"] = divisor(dim, kernel_groups, 6)
        else:
            window = w.shape(block + "IDynamicDWConv.conv.weight")[-1]
        kwargs["window_size"] = window
        kwargs["idynamic_ffn_type"], kwargs["idynamic_ffn_expansion_factor"] = _ffn(w, block + "IDynamic_ffn.", dim)
    if glob:
        block = f"{layers}{glob[0]}."
        kwargs["restormer_num_heads"] = w.shape(block + "restormer_attn.temperature")[0]
        kwargs["restormer_ffn_type"], kwargs["restormer_ffn_expansion_factor"] = _ffn(w, block + "restormer_ffn.", dim)
    if "conv_before_upsample.0.weight" in w:
        kwargs.update(upsampler="pixelshuffle", upscale=pixelshuffle_scale(w))
    elif "upsample.0.weight" in w:  # UpsampleOneStep: one conv to scale**2 * in_chans channels
        kwargs.update(upsampler="pixelshuffledirect",
                      upscale=square_side(w.shape("upsample.0.weight")[0] // in_chans, "the upsampling conv"))
    else:
        kwargs.update(upsampler="", upscale=1)
    kwargs["tlc_kernel"] = TLC_KERNEL.get(kwargs["upscale"], 48)
    return kwargs


@register(matches=lambda w: "overlap_embed.0.proj.weight" in w, recover=_recover, unrecoverable=UNRECOVERABLE,
          **SR_NETWORK, width=lambda model: model.dim, fixtures="dlgsanet",
          recipes={"DLGSANetModel": "sr:SRRecipe"})
class DLGSANet(SRNetwork):
    """DLGSANet; arguments are those of the official ``DLGSANet`` class.

    ``input_resolution`` only served the official FLOP count and is ignored. Inputs of any size
    and batch are accepted (no padding is needed).
    """

    def __init__(self, in_chans: int = 3, dim: int = 60, groups: int = 4, blocks: int = 3,
                 buildblock_type: str = "edge", window_size: int = 7, idynamic_num_heads: int = 6,
                 idynamic_ffn_type: str = "GDFN", idynamic_ffn_expansion_factor: float = 2.0, idynamic: bool = True,
                 restormer_num_heads: int = 6, restormer_ffn_type: str = "GDFN",
                 restormer_ffn_expansion_factor: float = 2.0, tlc_flag: bool = True, tlc_kernel: int = 48,
                 activation: str = "relu", upscale: int = 4, img_range: float = 1.0, upsampler: str = "",
                 body_norm: bool = False, input_resolution: tuple[int, int] | None = None) -> None:
        super().__init__()
        self._build_mean(in_chans, img_range)
        self.dim = dim
        self.overlap_embed = nn.Sequential(OverlapPatchEmbed(in_chans, dim))
        body: list[nn.Module] = [LayerNorm2d(dim)] if body_norm else []
        body += [BuildBlock(dim, blocks, buildblock_type, window_size, idynamic_num_heads, idynamic_ffn_type,
                            idynamic_ffn_expansion_factor, idynamic, restormer_num_heads, restormer_ffn_type,
                            restormer_ffn_expansion_factor, tlc_flag, tlc_kernel, activation)
                 for _ in range(groups)]
        if body_norm:
            body.append(LayerNorm2d(dim))
        self.deep_feature_extraction = nn.Sequential(*body, nn.Conv2d(dim, dim, 3, 1, 1))
        self._build_reconstruction(dim, upscale, upsampler, "DLGSANet")

    def forward_image(self, x: Tensor) -> Tensor:
        x = self.overlap_embed(x)
        x = self.deep_feature_extraction(x) + x
        return self.reconstruct(x)

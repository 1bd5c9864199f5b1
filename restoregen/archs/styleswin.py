"""StyleSwin (Zhang et al., "StyleSwin: Transformer-based GAN for High-resolution Image
Generation", CVPR 2022): the style-based Swin generator and the wavelet discriminator, with the
official constructor arguments and state-dict names.

Generator: a mapping network turns z into w; a learned 4x4 constant goes through one
:class:`StyleBasicLayer` per resolution (two transformer blocks with style-modulated instance
norms, then a bilinear x2 upsample with a sinusoidal position encoding), and every resolution adds
an RGB skip. Each block runs *double attention*: half of the heads on regular windows, half on
shifted windows, both from one q/k/v projection. The output is in ImageNet-normalised space
(``(rgb - mean) / std``), like the official training data; :func:`to_unit_range` maps it to [0, 1].

Discriminator: a StyleGAN2 residual discriminator that works on Haar wavelet sub-bands and feeds
the (down-sampled) wavelets of the input into every resolution.

Differences from the official code, all additive: an optional ``channels`` table (the official
one is hard-coded), truncation with ``truncation != 1`` (the official forward crashes), style
mixing and W / W+ inputs, and pure-PyTorch ops (no compiled CUDA extension).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..attention import WindowAttentionCore, shifted_window_mask, to_pair
from .blocks import Mlp, init_transformer_weights
from .detect import UnknownArchitecture, Weights
from .ops import (
    Blur,
    BlurDownsample,
    BlurUpsample,
    EqualConv2d,
    EqualLinear,
    FusedLeakyReLU,
    HaarTransform,
    InverseHaarTransform,
    PixelNorm,
    ScaledLeakyReLU,
    minibatch_stddev,
    sinusoidal_grid,
)
from .registry import GENERATOR, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def official_generator_channels(channel_multiplier: int = 2) -> list[int]:
    """The official generator channel table; index i is resolution 2**(i+2) (4 ... 1024)."""
    cm = channel_multiplier
    return [512, 512, 512, 512, 256 * cm, 128 * cm, 64 * cm, 32 * cm, 16 * cm]


def official_discriminator_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """The official discriminator channel table: resolution -> channels."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


def to_unit_range(images: Tensor) -> Tensor:
    """Generator output (ImageNet-normalised) -> RGB in [0, 1] (clamped)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)


def from_unit_range(images: Tensor) -> Tensor:
    """RGB in [0, 1] -> the ImageNet-normalised space of the generator and discriminator."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _log2(size: int, what: str) -> int:
    log = int(math.log2(size)) if size > 0 else 0
    if size < 4 or 2**log != size:
        raise ValueError(f"{what}: size must be a power of two >= 4, got {size}")
    return log


# ---------------------------------------------------------------------------------------------
# Generator


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm over the tokens, then a per-channel scale and shift predicted from the style."""

    def __init__(self, in_channel: int, style_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm1d(in_channel)
        self.style = EqualLinear(style_dim, in_channel * 2)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """``x``: channels-last ``(B, H, W, C)``; ``style``: ``(B, style_dim)``."""
        b, h, w, c = x.shape
        gamma, beta = self.style(style).view(b, 1, 1, 2 * c).chunk(2, dim=-1)
        normed = self.norm(x.reshape(b, h * w, c).transpose(1, 2)).transpose(1, 2).reshape(b, h, w, c)
        return gamma * normed + beta


class StyleSwinTransformerBlock(nn.Module):
    """Style-modulated Swin block with double attention.

    One q/k/v projection; the first half of the channels (and heads) attends within regular
    windows, the second half within windows shifted by half a window (with Swin's mask, stored as
    the ``attn_mask2`` buffer as in the official checkpoints). Where the map fits in one window
    there is no shift and both halves see the whole map.
    """

    def __init__(self, dim: int, input_resolution: Sequence[int], num_heads: int, window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, act_layer: type[nn.Module] = nn.GELU, style_dim: int = 512) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = height, width = to_pair(input_resolution)
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = window_size // 2
        if min(height, width) <= window_size:  # the map fits in one window: no partition, no shift
            self.window_size, self.shift_size = min(height, width), 0
        self.norm1 = AdaptiveInstanceNorm(dim, style_dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn = nn.ModuleList(
            WindowAttentionCore(dim // 2, self.window_size, num_heads // 2, qk_scale=qk_scale, attn_drop=attn_drop,
                                store_index=True)
            for _ in range(2))
        mask = None
        if self.shift_size:
            mask = shifted_window_mask(height, width, self.window_size, self.shift_size,
                                       torch.get_default_device()).clone()
        self.register_buffer("attn_mask2", mask)
        self.norm2 = AdaptiveInstanceNorm(dim, style_dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """``x``: channels-last ``(B, H, W, C)``; ``style``: ``(B, style_dim)``."""
        b, h, w, c = x.shape
        if (h, w) != self.input_resolution or c != self.dim:
            raise ValueError(f"StyleSwin block built for {self.input_resolution} x {self.dim}, got {h}x{w} x {c}")
        qkv = self.qkv(self.norm1(x, style)).view(b, h, w, 3, c)
        halves = (qkv[..., : c // 2].reshape(b, h, w, -1), qkv[..., c // 2:].reshape(b, h, w, -1))  # q|k|v each
        regular = self.attn[0].forward_map(halves[0])
        shifted = self.attn[1].forward_map(halves[1], self.shift_size, self.attn_mask2)
        x = x + self.proj(torch.cat([regular, shifted], dim=-1))
        return x + self.mlp(self.norm2(x, style))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, input_resolution={self.input_resolution}, num_heads={self.num_heads}, "
                f"window_size={self.window_size}, shift_size={self.shift_size}")


class SinusoidalPositionalEmbedding(nn.Module):
    """Holds the official (unused) ``_float_tensor`` buffer and serves the cached 2-D SPE grid."""

    def __init__(self, embedding_dim: int, padding_idx: int = 0, init_size: int = 1024) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.register_buffer("_float_tensor", torch.zeros(1))

    def grid(self, height: int, width: int) -> Tensor:
        """``(height, width, 2 * embedding_dim)`` float32 on the buffer's device."""
        return sinusoidal_grid(height, width, 2 * self.embedding_dim, self._float_tensor.device)


class BilinearUpsample(nn.Module):
    """Bilinear x2 upsample, LayerNorm, linear channel reduction, plus a learned multiple
    (``alpha``) of the sinusoidal position encoding."""

    def __init__(self, input_resolution: Sequence[int], dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        out_dim = out_dim or dim
        if dim % 2 or out_dim % 4:
            raise ValueError(f"BilinearUpsample needs an even dim and out_dim divisible by 4, got {dim}, {out_dim}")
        self.input_resolution = to_pair(input_resolution)
        self.dim = dim
        self.out_dim = out_dim
        self.norm = nn.LayerNorm(dim)
        self.reduction = nn.Linear(dim, out_dim, bias=False)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.sin_pos_embed = SinusoidalPositionalEmbedding(out_dim // 2, padding_idx=0, init_size=out_dim // 2)

    def forward(self, x: Tensor) -> Tensor:
        """Channels-last ``(B, H, W, dim)`` -> ``(B, 2H, 2W, out_dim)``."""
        x = nn.functional.interpolate(x.permute(0, 3, 1, 2), scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.reduction(self.norm(x.permute(0, 2, 3, 1)))
        return x + self.sin_pos_embed.grid(*x.shape[1:3]).to(x.dtype) * self.alpha


_UPSAMPLERS = {"BilinearUpsample": BilinearUpsample}


class StyleBasicLayer(nn.Module):
    """One generator stage: two StyleSwin blocks (one style each), then an optional upsample.

    The forward takes and returns tokens ``(B, H*W, C)`` as in the official code. ``upsample`` is
    ``None``, the class :class:`BilinearUpsample` or its name.
    """

    def __init__(self, dim: int, input_resolution: Sequence[int], depth: int, num_heads: int, window_size: int,
                 out_dim: int | None = None, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0,
                 upsample: type[nn.Module] | str | None = None, use_checkpoint: bool = False,
                 style_dim: int = 512) -> None:
        super().__init__()
        if depth != 2:
            raise ValueError(f"StyleBasicLayer: depth must be 2 (one block per style of the stage), got {depth}")
        self.dim = dim
        self.input_resolution = to_pair(input_resolution)
        self.depth = depth
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            StyleSwinTransformerBlock(dim, input_resolution, num_heads, window_size, mlp_ratio=mlp_ratio,
                                      qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop, attn_drop=attn_drop,
                                      style_dim=style_dim)
            for _ in range(depth))
        if isinstance(upsample, str):
            if upsample not in _UPSAMPLERS:
                raise ValueError(f"StyleBasicLayer: unknown upsample {upsample!r}; known: {', '.join(_UPSAMPLERS)}")
            upsample = _UPSAMPLERS[upsample]
        self.upsample = upsample(input_resolution, dim=dim, out_dim=out_dim) if upsample is not None else None

    def forward(self, x: Tensor, latent1: Tensor, latent2: Tensor) -> Tensor:
        b, length, c = x.shape
        h, w = self.input_resolution
        if length != h * w:
            raise ValueError(f"StyleBasicLayer built for {h}x{w} tokens, got {length}")
        x = x.view(b, h, w, c)
        for block, latent in zip(self.blocks, (latent1, latent2), strict=True):
            if self.use_checkpoint and torch.is_grad_enabled():
                x = checkpoint(block, x, latent, use_reentrant=False)
            else:
                x = block(x, latent)
        if self.upsample is not None:
            x = self.upsample(x)
        return x.reshape(b, -1, x.shape[-1])


class ToRGB(nn.Module):
    """1x1 convolution to RGB plus a bias, added to the (FIR-upsampled) RGB skip of the previous
    stage."""

    def __init__(self, in_channel: int, upsample: bool = True, resolution: int | None = None,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.is_upsample = upsample
        self.resolution = resolution
        if upsample:
            self.upsample = BlurUpsample(blur_kernel)
        self.conv = nn.Conv2d(in_channel, 3, kernel_size=1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x) + self.bias
        if skip is not None:
            out = out + (self.upsample(skip) if self.is_upsample else skip)
        return out


class ConstantInput(nn.Module):
    """The learned ``(1, C, size, size)`` input of the synthesis network."""

    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


def _init_generator_weights(module: nn.Module) -> None:
    init_transformer_weights(module)
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_normal_(module.weight, gain=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class StyleSwinGenerator(nn.Module):
    """StyleSwin generator; arguments are those of the official ``Generator`` plus ``channels``.

    Args:
        channels: channel table, index i = resolution 2**(i+2); defaults to the official table
            for ``channel_multiplier``. Heads per stage are ``max(channels // 32, 4)``.
        enable_full_resolution: stages up to this resolution attend over the whole map; larger
            ones use 8x8 windows (half of the heads shifted by 4).

    Forward: ``image, latent = G(z, return_latents=False, inject_index=None, truncation=1,
    truncation_latent=None, input_is_latent=False)``; ``latent`` is ``(B, n_latent, style_dim)``
    when ``return_latents`` else ``None``. ``z`` is ``(B, style_dim)`` (or ``(B, n_latent,
    style_dim)``: one z per style input) or, for style mixing, a list of two such tensors (the
    second one's styles from ``inject_index`` on, random if ``None``). With
    ``input_is_latent=True`` the inputs are w ``(B, style_dim)`` or W+ ``(B, n_latent,
    style_dim)``. Truncation ``w_avg + t * (w - w_avg)`` is applied to every w with
    ``truncation_latent`` (``(1, style_dim)``, default :meth:`mean_latent`).
    """

    def __init__(self, size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2, lr_mlp: float = 0.01,
                 enable_full_resolution: int = 8, mlp_ratio: float = 4, use_checkpoint: bool = False,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, channels: Sequence[int] | None = None) -> None:
        super().__init__()
        end = _log2(size, "StyleSwinGenerator")
        channels = list(channels) if channels is not None else official_generator_channels(channel_multiplier)
        stages = end - 1  # resolutions 4, 8, ..., size
        if len(channels) < stages:
            raise ValueError(f"StyleSwinGenerator: channels needs {stages} entries (resolutions 4..{size}), "
                             f"got {len(channels)}")
        self.size = size
        self.style_dim = style_dim
        self.mlp_ratio = mlp_ratio
        self.channels = channels[:stages]
        self.style = nn.Sequential(
            PixelNorm(), *(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu")
                           for _ in range(n_mlp)))
        full_resolution_log = int(math.log2(enable_full_resolution))
        self.input = ConstantInput(channels[0])
        self.layers = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for i in range(stages):
            log_res, dim, last = i + 2, channels[i], i == stages - 1
            out_dim = dim if last else channels[i + 1]
            self.layers.append(StyleBasicLayer(
                dim, (2**log_res, 2**log_res), depth=2, num_heads=max(dim // 32, 4),
                window_size=2**log_res if log_res <= full_resolution_log else 8, out_dim=None if last else out_dim,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
                upsample=None if last else BilinearUpsample, use_checkpoint=use_checkpoint, style_dim=style_dim))
            self.to_rgbs.append(ToRGB(out_dim, upsample=not last, resolution=2**log_res))
        self.n_latent = 2 * stages
        self.apply(_init_generator_weights)

    # -- latents ---------------------------------------------------------------------------

    @torch.no_grad()
    def mean_latent(self, n_latent: int = 4096, seed: int = 0) -> Tensor:
        """Average w of ``n_latent`` z drawn with a fixed seed (the truncation centre), ``(1, style_dim)``."""
        device = self.input.input.device
        z = torch.randn(n_latent, self.style_dim, generator=torch.Generator().manual_seed(seed))
        return self.style(z.to(device, self.input.input.dtype)).mean(0, keepdim=True)

    def _as_wplus(self, w: Tensor) -> Tensor:
        if w.dim() == 2:
            return w.unsqueeze(1).expand(-1, self.n_latent, -1)
        if w.dim() != 3 or w.shape[1] != self.n_latent:
            raise ValueError(f"StyleSwinGenerator: W+ latents must be (B, {self.n_latent}, {self.style_dim}), "
                             f"got {tuple(w.shape)}")
        return w

    def latents(self, noise: Tensor | Sequence[Tensor], inject_index: int | None = None, truncation: float = 1.0,
                truncation_latent: Tensor | None = None, input_is_latent: bool = False) -> Tensor:
        """The ``(B, n_latent, style_dim)`` W+ latents the synthesis network consumes."""
        inputs = [noise] if isinstance(noise, Tensor) else list(noise)
        if not 1 <= len(inputs) <= 2:
            raise ValueError(f"StyleSwinGenerator: pass one latent tensor or two for style mixing, got {len(inputs)}")
        for t in inputs:
            if t.shape[-1] != self.style_dim:
                raise ValueError(f"StyleSwinGenerator: latents must end in style_dim={self.style_dim}, "
                                 f"got {tuple(t.shape)}")
        styles = inputs if input_is_latent else [self.style(t) for t in inputs]
        if truncation != 1:
            if truncation_latent is None:
                truncation_latent = self.mean_latent()
            styles = [truncation_latent + truncation * (w - truncation_latent) for w in styles]
        latents = [self._as_wplus(w) for w in styles]
        if len(latents) == 1:
            return latents[0]
        if inject_index is None:
            inject_index = int(torch.randint(1, self.n_latent, ()))
        return torch.cat([latents[0][:, :inject_index], latents[1][:, inject_index:]], dim=1)

    # -- synthesis -------------------------------------------------------------------------

    def synthesis(self, latent: Tensor) -> Tensor:
        """W+ latents ``(B, n_latent, style_dim)`` -> image ``(B, 3, size, size)`` (ImageNet-normalised)."""
        b = latent.shape[0]
        x = self.input(b).flatten(2).transpose(1, 2)  # B, 16, C
        skip = None
        for i, (layer, to_rgb) in enumerate(zip(self.layers, self.to_rgbs, strict=True)):
            x = layer(x, latent[:, 2 * i], latent[:, 2 * i + 1])
            side = math.isqrt(x.shape[1])
            skip = to_rgb(x.transpose(1, 2).reshape(b, -1, side, side), skip)
        return skip

    def forward(self, noise: Tensor | Sequence[Tensor], return_latents: bool = False, inject_index: int | None = None,
                truncation: float = 1.0, truncation_latent: Tensor | None = None,
                input_is_latent: bool = False) -> tuple[Tensor, Tensor | None]:
        latent = self.latents(noise, inject_index, truncation, truncation_latent, input_is_latent)
        image = self.synthesis(latent)
        return image, (latent if return_latents else None)


# ---------------------------------------------------------------------------------------------
# Discriminator


def _spectral_norm(module: nn.Module) -> nn.Module:
    """``torch.nn.utils.spectral_norm``: the ``weight_orig``/``weight_u``/``weight_v`` layout of the
    official checkpoints (the parametrization API would rename the keys)."""
    return nn.utils.spectral_norm(module)


class ConvLayer(nn.Sequential):
    """[Blur] -> conv (equalised, or spectral-normalised with ``sn``) -> [biased leaky ReLU]."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True, activate: bool = True,
                 sn: bool = False) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
        stride, padding = (2, 0) if downsample else (1, kernel_size // 2)
        conv_bias = bias and not activate
        if sn:
            layers.append(_spectral_norm(nn.Conv2d(in_channel, out_channel, kernel_size, padding=padding,
                                                   stride=stride, bias=conv_bias)))
        else:
            layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=padding, stride=stride,
                                      bias=conv_bias))
        if activate:
            layers.append(FusedLeakyReLU(out_channel) if bias else ScaledLeakyReLU(0.2))
        super().__init__(*layers)


class ConvBlock(nn.Module):
    """3x3 convolution, then a down-sampling 3x3 convolution."""

    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 sn: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, sn=sn)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel, sn=sn)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class FromRGB(nn.Module):
    """Wavelet input of one discriminator stage: optionally halve the wavelet image (inverse DWT,
    FIR downsample, DWT), then a 1x1 convolution added to the features of the previous stage."""

    def __init__(self, out_channel: int, downsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 sn: bool = False) -> None:
        super().__init__()
        self.halves = downsample
        if downsample:
            self.iwt = InverseHaarTransform(3)
            self.downsample = BlurDownsample(blur_kernel)
            self.dwt = HaarTransform(3)
        self.conv = ConvLayer(3 * 4, out_channel, 1, sn=sn)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.halves:
            x = self.dwt(self.downsample(self.iwt(x)))
        out = self.conv(x)
        return x, (out if skip is None else out + skip)


@register
class StyleSwinDiscriminator(nn.Module):
    """StyleSwin wavelet discriminator; arguments are those of the official ``Discriminator`` plus
    ``channels`` (resolution -> channels, defaults to the official table for
    ``channel_multiplier``). ``ssd`` is accepted and unused, as in the official code. Input:
    ImageNet-normalised ``(B, 3, size, size)``; output logits ``(B, 1)``; B must be divisible by
    ``min(B, 4)`` (minibatch standard deviation)."""

    def __init__(self, size: int, channel_multiplier: int = 2, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 sn: bool = False, ssd: bool = False, channels: Mapping[int | str, int] | None = None) -> None:
        super().__init__()
        log_size = _log2(size, "StyleSwinDiscriminator") - 1
        if size < 16:
            raise ValueError(f"StyleSwinDiscriminator: size must be at least 16, got {size}")
        if channels is None:
            channels = official_discriminator_channels(channel_multiplier)
        table = {int(res): int(c) for res, c in channels.items()}
        missing = [2**i for i in range(2, log_size + 2) if 2**i not in table]
        if missing:
            raise ValueError(f"StyleSwinDiscriminator: channels lacks resolutions {missing}")
        self.size = size
        self.dwt = HaarTransform(3)
        self.from_rgbs = nn.ModuleList()
        self.convs = nn.ModuleList()
        in_channel = table[size]
        for i in range(log_size, 2, -1):  # features at 2**i / 2 after the first DWT
            out_channel = table[2 ** (i - 1)]
            self.from_rgbs.append(FromRGB(in_channel, downsample=i != log_size, blur_kernel=blur_kernel, sn=sn))
            self.convs.append(ConvBlock(in_channel, out_channel, blur_kernel, sn=sn))
            in_channel = out_channel
        self.from_rgbs.append(FromRGB(table[4], blur_kernel=blur_kernel, sn=sn))
        self.stddev_group = 4
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, table[4], 3, sn=sn)
        if sn:
            self.final_linear = nn.Sequential(
                _spectral_norm(nn.Linear(table[4] * 4 * 4, table[4])),
                FusedLeakyReLU(table[4]),
                _spectral_norm(nn.Linear(table[4], 1)))
        else:
            self.final_linear = nn.Sequential(
                EqualLinear(table[4] * 4 * 4, table[4], activation="fused_lrelu"),
                EqualLinear(table[4], 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"StyleSwinDiscriminator expects (B, 3, {self.size}, {self.size}), got {tuple(x.shape)}")
        wavelets = self.dwt(x)
        out = None
        for from_rgb, conv in zip(self.from_rgbs[:-1], self.convs, strict=True):
            wavelets, out = from_rgb(wavelets, out)
            out = conv(out)
        _, out = self.from_rgbs[-1](wavelets, out)
        out = minibatch_stddev(out, self.stddev_group, self.stddev_feat)
        out = self.final_conv(out)
        return self.final_linear(out.flatten(1))


# ---------------------------------------------------------------------------------------------
# Recovering constructor arguments from weights


def official_training_kwargs(args: Mapping) -> tuple[dict, dict]:
    """Generator and discriminator kwargs from the ``args`` of an official ``train_styleswin.py``
    checkpoint (its argparse fields as a mapping), the way that script builds the networks."""
    size = int(args.get("size", 256))
    generator = dict(size=size, style_dim=int(args.get("style_dim", 512)), n_mlp=int(args.get("n_mlp", 8)),
                     channel_multiplier=int(args.get("G_channel_multiplier", 1)),
                     lr_mlp=float(args.get("lr_mlp", 0.01)),
                     enable_full_resolution=int(args.get("enable_full_resolution", 8)),
                     use_checkpoint=bool(args.get("use_checkpoint", False)))
    discriminator = dict(size=size, channel_multiplier=int(args.get("D_channel_multiplier", 2)),
                         sn=bool(args.get("D_sn", False)))
    return generator, discriminator


def infer_generator_kwargs(state_dict: Mapping[str, Tensor]) -> dict:
    """Constructor kwargs of a StyleSwin generator recovered from its state-dict shapes.

    Recovered: ``size``, ``style_dim``, ``n_mlp``, ``mlp_ratio``, ``qkv_bias``,
    ``enable_full_resolution`` and the channel table (``channel_multiplier`` when it is an official
    table, else ``channels``). Not recoverable from shapes: ``lr_mlp`` and ``qk_scale`` (the
    official defaults 0.01 and None are used; pass the real values if a model was trained with
    others). Raises :class:`~restoregen.archs.detect.UnknownArchitecture` for other state dicts.
    """
    return _recover_generator(Weights(state_dict))


def _recover_generator(w: Weights) -> dict:
    stages = w.count(r"layers\.(\d+)\.blocks\.0\.qkv\.weight$")
    n_mlp = w.count(r"style\.(\d+)\.weight$") - 1  # style.0 is the PixelNorm, without weights
    if stages == 0 or n_mlp <= 0:
        raise UnknownArchitecture("no 'layers.*.blocks.0.qkv.weight' / 'style.*.weight'")
    channels = [w.shape(f"layers.{i}.blocks.0.qkv.weight")[1] for i in range(stages)]
    style_dim = w.shape("style.1.weight")[1]
    full_resolution = 8
    for i in range(stages):
        table_rows = w.shape(f"layers.{i}.blocks.0.attn.0.relative_position_bias_table")[0]
        window = (math.isqrt(table_rows) + 1) // 2
        if window == 2 ** (i + 2):
            full_resolution = max(full_resolution, window)
    hidden = w.shape("layers.0.blocks.0.mlp.fc1.weight")[0]
    mlp_ratio = hidden / channels[0]
    kwargs: dict = dict(size=2 ** (stages + 1), style_dim=style_dim, n_mlp=n_mlp,
                        enable_full_resolution=full_resolution,
                        mlp_ratio=int(mlp_ratio) if mlp_ratio == int(mlp_ratio) else mlp_ratio,
                        qkv_bias="layers.0.blocks.0.qkv.bias" in w)
    for cm in (2, 1, 4):
        if official_generator_channels(cm)[:stages] == channels:
            kwargs["channel_multiplier"] = cm
            break
    else:
        kwargs["channels"] = channels
    return kwargs


register(StyleSwinGenerator, task=GENERATOR, recover=_recover_generator,
         matches=lambda w: "layers.0.blocks.0.qkv.weight" in w and "style.1.weight" in w,
         unrecoverable={"lr_mlp": 0.01, "qk_scale": None}, fixtures="styleswin",
         recipes={"StyleSwinGANModel": "gan:StyleSwinGANRecipe"})


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "BilinearUpsample", "StyleBasicLayer", "StyleSwinDiscriminator",
    "StyleSwinGenerator", "StyleSwinTransformerBlock", "from_unit_range", "infer_generator_kwargs",
    "official_discriminator_channels", "official_generator_channels", "official_training_kwargs", "to_unit_range",
]

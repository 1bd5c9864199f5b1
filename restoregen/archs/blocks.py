"""Building blocks shared by the networks (HAT, DRCT, DLGSANet, ...).

Feature maps inside transformer bodies are channels-last ``(B, H, W, C)``; convolutions take
``(B, C, H, W)``. Attribute names follow the official checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..attention import (
    LinearWeights,
    WindowAttention,
    fuses_linear_epilogues,
    linear_epilogue,
    pad_to_multiple,
    resolve,
    shifted_window_mask,
    to_pair,
)
from ..attention.windows import Pair


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def drop_path_rates(depths: list[int] | tuple[int, ...], rate: float) -> list[list[float]]:
    """Linearly increasing stochastic-depth rates, split per stage (the Swin rule)."""
    rates = torch.linspace(0, rate, sum(depths), device="cpu").tolist()
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [rates[start:start + depth] for start, depth in zip(starts, depths, strict=True)]


class Mlp(nn.Module):
    """``fc1 -> act -> drop -> fc2 -> drop``."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """The MLP of ``x``, plus ``residual`` if given (fused into ``fc2`` where :func:`linear_epilogue` fuses)."""
        if self.training and self.drop.p > 0:
            out = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
            return out if residual is None else residual + out
        return linear_epilogue(linear_epilogue(x, self.fc1, self.act), self.fc2, residual=residual)


class ChannelAttention(nn.Module):
    """RCAN channel attention: ``x * sigmoid(conv(relu(conv(avgpool(x)))))``."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)

    def gate_channels_last(self, x: Tensor) -> Tensor:
        """The ``(B, 1, 1, C)`` channel weights of a channels-last map ``(B, H, W, C)``."""
        _, squeeze, act, expand, sigmoid = self.attention
        pooled = x.mean(dim=(1, 2), keepdim=True)
        hidden = act(F.linear(pooled, squeeze.weight.flatten(1), squeeze.bias))
        return sigmoid(F.linear(hidden, expand.weight.flatten(1), expand.bias))


def conv3x3_channels_last(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 3x3 ``conv`` (stride 1, zero padding 1) on a channels-last map: ``(B, H, W, Cin)`` -> ``(B, H, W, Cout)``.

    A convolution that reduces the channels is one matrix product onto its nine taps, whose
    shifted results are then summed: on the CPU faster than oneDNN for HAT's narrow squeeze
    (144 -> 6). Others run oneDNN on the channels-last view.
    """
    b, h, w, c_in = x.shape
    c_out = conv.out_channels
    if c_out >= c_in:
        return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    taps = (x.reshape(-1, c_in) @ conv.weight.permute(1, 2, 3, 0).reshape(c_in, 9 * c_out)).view(b, h, w, 3, 3, c_out)
    out = conv.bias.expand(b, h, w, c_out).clone() if conv.bias is not None else x.new_zeros(b, h, w, c_out)
    for dy in range(3):
        rows = slice(max(0, 1 - dy), h - max(0, dy - 1))
        for dx in range(3):
            cols = slice(max(0, 1 - dx), w - max(0, dx - 1))
            # out[i, j] += taps[i + dy - 1, j + dx - 1, dy, dx]
            out[:, rows, cols] += taps[:, rows.start + dy - 1:rows.stop + dy - 1,
                                       cols.start + dx - 1:cols.stop + dx - 1, dy, dx]
    return out


class CAB(nn.Module):
    """Channel-attention block: ``conv3x3 -> GELU -> conv3x3 -> channel attention`` (HAT)."""

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // compress_ratio, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(num_feat // compress_ratio, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)

    def forward_channels_last(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The block on a channels-last map ``(B, H, W, C)``, unmultiplied: ``features * gate`` is
        :meth:`forward`'s result (channels-last), with ``gate`` ``(B, 1, 1, C)``."""
        squeeze, act, expand, attention = self.cab
        features = conv3x3_channels_last(act(conv3x3_channels_last(x, squeeze)), expand)
        return features, attention.gate_channels_last(features)


class PatchEmbed(nn.Module):
    """``(B, C, H, W)`` -> channels-last ``(B, H, W, C)``, optionally layer-normed (patch size 1)."""

    def __init__(self, embed_dim: int, norm_layer: type[nn.Module] | None = nn.LayerNorm) -> None:
        super().__init__()
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        return self.norm(x) if self.norm is not None else x


class Upsample(nn.Sequential):
    """Conv + PixelShuffle stages for scales 2^n and 3 (keys ``0, 2, ...``)."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"upscale {scale} is not supported; supported scales are powers of 2 and 3")
        super().__init__(*layers)


class FusedTail(NamedTuple):
    """A pixel-shuffle tail's linear part as one convolution on the input grid and one pixel shuffle."""

    weight: Tensor  # (out_chans * scale**2, num_feat, 2 * radius + 1, 2 * radius + 1)
    bias: Tensor
    radius: int  # tail_radius


def _linear_tail(x: Tensor, upsample: nn.Sequential, conv_last: nn.Conv2d) -> Tensor:
    """``conv_last(upsample(x))`` in ``x``'s dtype, whatever the modules' dtype."""
    for layer in (*upsample, conv_last):
        if isinstance(layer, nn.Conv2d):
            bias = None if layer.bias is None else layer.bias.to(x.dtype)
            x = F.conv2d(x, layer.weight.to(x.dtype), bias, padding=layer.padding)
        else:
            x = layer(x)
    return x


def tail_radius(upsample: nn.Sequential) -> int:
    """Input-grid cells that ``upsample`` then a 3x3 ``conv_last`` reach: one per 3x3 convolution."""
    return sum(isinstance(layer, nn.Conv2d) for layer in upsample) + 1


def fuse_tail(upsample: nn.Sequential, conv_last: nn.Conv2d, scale: int) -> FusedTail:
    """``upsample`` (3x3 convolutions and pixel shuffles) then ``conv_last`` is linear: one
    convolution on the input grid to ``out_chans * scale**2`` channels, then one pixel shuffle,
    gives the same output everywhere but in the outermost ring of input cells (where the original
    pads each stage with zeros). Read off the tail's response to one impulse per input channel."""
    channels = conv_last.in_channels
    radius = tail_radius(upsample)
    size = 2 * radius + 1
    device = conv_last.weight.device
    with torch.no_grad(), torch.autocast(device.type, enabled=False):  # float64 sums: the fused weights exact
        dtype = torch.float32 if device.type == "mps" else torch.float64  # (MPS has no float64)
        constant = _linear_tail(torch.zeros(1, channels, size, size, device=device, dtype=dtype),
                                upsample, conv_last)  # the biases' response alone
        response = []
        for start in range(0, channels, 16):  # a few impulses at a time: the tail's maps are wide
            index = torch.arange(start, min(start + 16, channels), device=device)
            impulses = torch.zeros(len(index), channels, size, size, device=device, dtype=dtype)
            impulses[torch.arange(len(index)), index, radius, radius] = 1.0
            response.append(_linear_tail(impulses, upsample, conv_last) - constant)
        response, constant = torch.cat(response), constant[0]
        out = constant.shape[0]
        cells = response.view(channels, out, size, scale, size, scale).permute(1, 3, 5, 0, 2, 4)
        fused = cells.reshape(out * scale * scale, channels, size, size).flip(-2, -1)  # correlation weights
        bias = constant.view(out, size, scale, size, scale)[:, radius, :, radius, :].reshape(-1)
    return FusedTail(fused.float().contiguous(), bias.float().contiguous(), radius)


class UpsampleOneStep(nn.Sequential):
    """One conv to ``scale**2 * out_chans`` channels and one PixelShuffle (lightweight SR heads)."""

    def __init__(self, scale: int, num_feat: int, out_chans: int) -> None:
        super().__init__(nn.Conv2d(num_feat, scale * scale * out_chans, 3, 1, 1), nn.PixelShuffle(scale))


class SwinBlock(nn.Module):
    """Swin transformer block on a channels-last map.

    ``x + attn(norm1(x)) [+ conv_block(norm1(x)) * conv_scale]``, then ``x + mlp(norm2(x))``; the
    attention runs in (cyclically shifted) windows. ``conv_block`` is HAT's parallel convolution
    branch (HAB); without it this is the SwinIR/DRCT block.

    With ``mask_resolution`` a shifted block stores its mask for that map size as the persistent
    buffer ``attn_mask`` (as SwinIR-style checkpoints such as DRCT's carry it) and, like the
    official code, uses the stored mask whenever the map has exactly that size.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int = 0, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, act_layer: type[nn.Module] = nn.GELU,
                 norm_layer: type[nn.Module] = nn.LayerNorm, conv_block: CAB | None = None,
                 conv_scale: float = 1.0, store_index: bool = False, mask_resolution: int | Pair | None = None) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size={window_size})")
        self.dim = dim
        self.window_size = window_size
        self.shift_size = shift_size
        self.mask_resolution = to_pair(mask_resolution) if shift_size and mask_resolution is not None else None
        if self.mask_resolution is not None:
            mask = shifted_window_mask(*self.mask_resolution, window_size, shift_size, torch.get_default_device())
            self.register_buffer("attn_mask", mask.clone())
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                    attn_drop=attn_drop, proj_drop=drop, store_index=store_index)
        self.conv_block = conv_block
        self.conv_scale = conv_scale
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def window_attention(self, x: Tensor, mask: Tensor | None = None, index: Tensor | None = None,
                         residual: Tensor | None = None) -> Tensor:
        """(Shifted) window self-attention of a ``(B, H, W, C)`` map, plus ``residual`` if given;
        H, W multiples of the window."""
        if self.shift_size and mask is None and self.mask_resolution == tuple(x.shape[1:3]):
            mask = self.attn_mask.to(x.dtype)  # official: the stored mask at its own size (same values)
        return self.attn.forward_map(x, self.shift_size, mask, index, residual=residual)

    def add_branch(self, x: Tensor, branch: Callable[[Tensor | None], Tensor]) -> Tensor:
        """``x + drop_path(branch(None))``. ``branch(residual)`` returns its output plus ``residual``:
        without stochastic depth, ``x`` is handed to the branch, which can fuse the add."""
        if self.training and isinstance(self.drop_path, DropPath):
            return x + self.drop_path(branch(None))
        return branch(x)

    def forward(self, x: Tensor, mask: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        out = self.forward_attention(x, mask, index)
        return self.add_branch(out, lambda residual: self.mlp(self.norm2(out), residual))

    def forward_attention(self, x: Tensor, mask: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """The block up to its MLP: ``x`` plus the attention branch (and the convolution branch)."""
        y = self.norm1(x)
        out = self.add_branch(x, lambda residual: self.window_attention(y, mask, index, residual))
        if self.conv_block is not None:
            if resolve("window", y).reference:  # official: the branch in (B, C, H, W)
                out = out + self.conv_block(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) * self.conv_scale
            else:  # channels-last throughout, the gate, scale and residual in one pass
                features, gate = self.conv_block.forward_channels_last(y)
                out = out.addcmul_(features, gate * self.conv_scale)
        return out

    def forward_projected(self, x: Tensor, projection: nn.Conv2d, scale: float = 1.0,
                          residual: Tensor | None = None) -> Tensor:
        """``projection(block(x)) * scale [+ residual]`` for a 1x1 convolution ``projection`` of the
        block's channels-last output (DRCT's ``adjust`` convolutions, which are all its outputs feed).

        Where :func:`.linear_epilogue` fuses (inference), the projection is folded into the MLP's
        ``fc2``, both being linear: the result is ``P out + (P W2) hidden`` (bias folded too), so the
        block's own ``dim``-wide output is never formed and ``fc2``'s product shrinks to the
        projection's width. Elsewhere, the block and the convolution in the official order.
        """
        if self.training or not fuses_linear_epilogues(x):
            y = projection(self(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            if scale != 1.0:
                y = y * scale
            return y if residual is None else y + residual
        out = self.forward_attention(x)
        hidden = linear_epilogue(self.norm2(out), self.mlp.fc1, self.mlp.act)
        direct, through_mlp = self._folded_projection(projection, scale)
        return linear_epilogue(hidden, through_mlp, residual=linear_epilogue(out, direct, residual=residual))

    def _folded_projection(self, projection: nn.Conv2d, scale: float) -> tuple[LinearWeights, LinearWeights]:
        """``scale * projection`` applied to the block output ``out + fc2(hidden)``, as a linear map of
        ``out`` (bias included) and one of ``hidden``; cached until a weight changes."""
        fc2 = self.mlp.fc2

        def fold() -> tuple[LinearWeights, LinearWeights]:
            weight = projection.weight.flatten(1) * scale  # (out, dim)
            bias = projection.bias * scale if projection.bias is not None else weight.new_zeros(weight.shape[0])
            if fc2.bias is not None:
                bias = bias + weight @ fc2.bias
            return LinearWeights(weight, bias), LinearWeights((weight @ fc2.weight).contiguous())

        return derived_weights(self, "_projection_fold", (projection, fc2), fold, scale)


def derived_weights(owner: nn.Module, name: str, sources: tuple[nn.Module, ...], build: Callable[[], object],
                    *extra: object) -> object:
    """``build()``, cached on ``owner`` as ``name`` until a parameter of ``sources`` changes (in place
    or replaced), the inference mode or ``extra`` changes: weights computed from weights at inference."""
    key = (torch.is_inference_mode_enabled(), *extra,
           *((p.data_ptr(), p._version) for source in sources for p in source.parameters()))
    cached = owner.__dict__.get(name)
    if cached is None or cached[0] != key:
        cached = key, build()
        owner.__dict__[name] = cached
    return cached[1]


def init_transformer_weights(module: nn.Module) -> None:
    """Swin initialisation (use with ``model.apply``): truncated-normal linear weights, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def run_blocks(blocks: nn.ModuleList, x: Tensor, use_checkpoint: bool, *args) -> Tensor:
    """Apply ``blocks`` in turn; with ``use_checkpoint`` recompute activations in the backward."""
    for block in blocks:
        if use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(block, x, *args, use_reentrant=False)
        else:
            x = block(x, *args)
    return x


RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean of the SwinIR family
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "")


class SRNetwork(nn.Module):
    """What the super-resolution networks share around their bodies.

    The input is shifted by the dataset mean and scaled by ``img_range`` (and back at the end);
    any size is accepted: it is reflect-padded to a multiple of ``size_multiple`` and the output
    cropped. The reconstruction head is one of SwinIR's: ``'pixelshuffle'`` (conv + LeakyReLU,
    conv/PixelShuffle stages, conv), ``'pixelshuffledirect'`` (one conv + PixelShuffle) or ``''``
    (one conv, no upscaling). A subclass implements :meth:`forward_image` on the normalised image.
    """

    size_multiple: int = 1

    def _build_mean(self, in_chans: int, img_range: float) -> None:
        self.in_chans = in_chans
        self.img_range = img_range
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)

    def _build_reconstruction(self, embed_dim: int, upscale: int, upsampler: str, arch: str,
                              num_feat: int = 64) -> None:
        self.upscale = upscale
        self.upsampler = upsampler
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, self.in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, self.in_chans)
        elif upsampler == "":
            self.conv_last = nn.Conv2d(embed_dim, self.in_chans, 3, 1, 1)
        else:
            raise ValueError(f"{arch}: upsampler {upsampler!r} is not supported; use one of {UPSAMPLERS}")

    def reconstruct(self, x: Tensor) -> Tensor:
        """Features ``(B, embed_dim, H, W)`` -> image ``(B, in_chans, sH, sW)``."""
        if self.upsampler == "pixelshuffle":
            x = self.conv_before_upsample(x)
            return self._fused_upsample(x) if fuses_tail(x) else self._official_upsample(x)
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(x)
        return self.conv_last(x)

    def _official_upsample(self, x: Tensor) -> Tensor:
        return self.conv_last(self.upsample(x))

    def _fused_upsample(self, x: Tensor) -> Tensor:
        """:meth:`_official_upsample` by :func:`fuse_tail` (cached until the weights change), the
        outermost ring of cells by the official tail on strips along the four edges."""
        strip = tail_radius(self.upsample) + 2  # gives the edge ring exactly (the far side pads wrongly)
        if min(x.shape[-2:]) <= 2 * strip:
            return self._official_upsample(x)
        tail = derived_weights(self, "_fused_tail", (self.upsample, self.conv_last),
                               lambda: fuse_tail(self.upsample, self.conv_last, self.upscale))
        out = F.pixel_shuffle(F.conv2d(x, tail.weight.to(x.dtype), tail.bias.to(x.dtype), padding=tail.radius),
                              self.upscale)
        s = self.upscale
        for inner, outer in ((slice(None, strip), slice(None, s)), (slice(-strip, None), slice(-s, None))):
            out[..., outer, :] = self._official_upsample(x[..., inner, :])[..., outer, :]
            out[..., :, outer] = self._official_upsample(x[..., :, inner])[..., :, outer]
        return out

    def forward_image(self, x: Tensor) -> Tensor:
        """The network on the normalised, padded image."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{type(self).__name__} expects (B, {self.in_chans}, H, W) input, got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        mean = self.mean.to(x.dtype)
        x = self.forward_image((x - mean) * self.img_range)
        x = x / self.img_range + mean
        return x[..., : height * self.output_scale, : width * self.output_scale]

    @property
    def output_scale(self) -> int:
        """Output side / input side (``upscale`` unless the upsampler is ``''``)."""
        return self.upscale if self.upsampler else 1


# how every SRNetwork describes itself to the registry (restoregen.archs.register)
SR_NETWORK = {"in_channels": lambda model: model.in_chans, "scale": lambda model: model.output_scale,
              "input_multiple": lambda model: model.size_multiple}


class SwinSRFrame(SRNetwork):
    """The SwinIR-style frame shared by HAT and DRCT.

    ``conv_first`` (shallow features) -> ``patch_embed`` [+ ``absolute_pos_embed``] -> residual
    groups ``layers`` on a channels-last map -> ``norm`` -> ``conv_after_body`` + long skip ->
    pixel-shuffle reconstruction.

    A subclass calls :meth:`_build_head`, builds ``self.layers``, calls :meth:`_build_tail` (this
    keeps the official state-dict order) and implements :meth:`forward_body`.
    """

    def _build_head(self, in_chans: int, embed_dim: int, img_range: float, patch_norm: bool,
                    norm_layer: type[nn.Module], ape: bool = False, resolution: int | Pair = 0,
                    drop_rate: float = 0.0) -> None:
        self._build_mean(in_chans, img_range)
        self.embed_dim = embed_dim
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        self.ape = ape
        if ape:  # absolute position embedding: fixes the input size to img_size
            rows, cols = to_pair(resolution)
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, rows * cols, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(p=drop_rate)

    def _build_tail(self, embed_dim: int, upscale: int, upsampler: str, resi_connection: str,
                    norm_layer: type[nn.Module], arch: str, num_feat: int = 64) -> None:
        if upsampler != "pixelshuffle":
            raise ValueError(f"{arch}: upsampler {upsampler!r} is not supported; the official {arch} "
                             "implements only 'pixelshuffle'")
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection, arch)
        self._build_reconstruction(embed_dim, upscale, upsampler, arch, num_feat)

    def forward_body(self, x: Tensor) -> Tensor:
        """Residual groups on the channels-last map ``(B, H, W, C)``."""
        raise NotImplementedError

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        if self.ape:
            b, h, w, c = x.shape
            pixels = self.absolute_pos_embed.shape[1]
            if h * w != pixels:
                raise ValueError(f"{type(self).__name__} with ape=True needs inputs of {pixels} pixels "
                                 f"(img_size squared), got {h}x{w} after padding")
            x = x + self.absolute_pos_embed.view(1, h, w, c)
        x = self.forward_body(self.pos_drop(x))
        return self.norm(x).permute(0, 3, 1, 2)

    def forward_image(self, x: Tensor) -> Tensor:
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        return self.reconstruct(x)


def fuses_tail(x: Tensor) -> bool:
    """Whether a pixel-shuffle tail runs as :func:`fuse_tail`'s one convolution: at inference
    (no autograd), outside torch.compile, on a backend that is not the reference ``math`` (which keeps
    the official operator order, as ONNX export does)."""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling() and not resolve("window", x).reference


def residual_conv(dim: int, resi_connection: str, arch: str) -> nn.Module:
    """The convolution closing a residual group: ``'1conv'`` (3x3) or ``'identity'``."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "identity":
        return nn.Identity()
    raise ValueError(f"{arch}: resi_connection {resi_connection!r} is not supported; use '1conv' or 'identity'")


__all__ = [
    "CAB", "RGB_MEAN", "SR_NETWORK", "UPSAMPLERS", "ChannelAttention", "DropPath", "Mlp", "PatchEmbed", "SRNetwork",
    "SwinBlock", "SwinSRFrame", "Upsample", "UpsampleOneStep", "drop_path_rates", "init_transformer_weights",
    "residual_conv", "run_blocks",
]

"""StyleGAN2-family operations in pure PyTorch: FIR up/down-sampling (``upfirdn2d``), the biased
leaky ReLU, equalised-learning-rate layers, Haar wavelets, sinusoidal position grids and the
minibatch standard deviation.

The official StyleGAN2/StyleSwin code compiles CUDA kernels for ``upfirdn2d`` and the biased
leaky ReLU at import; these are the same functions written with standard PyTorch operators, so
they run on any device and nothing is compiled. Module attribute and buffer names follow the
official checkpoints (``kernel``, ``weight``, ``bias``, ``ll``/``lh``/``hl``/``hh``, ...).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------
# FIR filtering


def make_kernel(taps: Sequence[float] | Tensor) -> Tensor:
    """A normalised 2-D FIR kernel: separable (outer product) for 1-D ``taps``, summing to 1."""
    kernel = torch.as_tensor(taps, dtype=torch.float32)
    if kernel.dim() == 1:
        kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] | tuple[int, int, int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, convolve with ``kernel`` (true convolution), downsample.

    ``x``: ``(B, C, H, W)``; ``kernel``: ``(kh, kw)``, applied to every channel. ``pad`` is
    ``(before, after)`` for both axes or ``(x_before, x_after, y_before, y_after)``; negative
    values crop. Output size: ``(H * up + pad_y - kh) // down + 1`` (likewise for W).
    """
    px0, px1, py0, py1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad
    b, c, h, w = x.shape
    x = x.reshape(b * c, 1, h, w)
    if up > 1:  # zero insertion: each sample followed by up-1 zeros on both axes
        x = F.pad(x.view(b * c, 1, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
        x = x.view(b * c, 1, h * up, w * up)
    x = F.pad(x, (max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)))
    x = x[..., max(-py0, 0):x.shape[-2] - max(-py1, 0), max(-px0, 0):x.shape[-1] - max(-px1, 0)]
    weight = torch.flip(kernel, (0, 1))[None, None].to(x.dtype)
    x = F.conv2d(x, weight, stride=down)
    return x.view(b, c, *x.shape[-2:])


class Blur(nn.Module):
    """FIR low-pass filter with explicit padding (before a strided convolution)."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class BlurUpsample(nn.Module):
    """Upsample by ``factor`` with an FIR interpolation filter (StyleGAN2 ``Upsample``)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class BlurDownsample(nn.Module):
    """Low-pass with an FIR filter, then downsample by ``factor`` (StyleGAN2 ``Downsample``)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, down=self.factor, pad=self.pad)


# ---------------------------------------------------------------------------------------------
# Activations and equalised-learning-rate layers


def fused_leaky_relu(x: Tensor, bias: Tensor, negative_slope: float = 0.2, scale: float = SQRT2,
                     dim: int = 1) -> Tensor:
    """``leaky_relu(x + bias, negative_slope) * scale`` with ``bias`` along dimension ``dim``."""
    shape = [1] * x.dim()
    shape[dim] = -1
    return F.leaky_relu(x + bias.view(shape), negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias, leaky ReLU (slope 0.2), gain sqrt(2); channels on dimension 1."""

    def __init__(self, channel: int, negative_slope: float = 0.2, scale: float = SQRT2) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class ScaledLeakyReLU(nn.Module):
    """``leaky_relu(x) * sqrt(2)`` without a bias."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate: weights drawn from N(0, 1/lr_mul) and scaled
    by ``lr_mul / sqrt(in_dim)`` at run time; ``activation='fused_lrelu'`` adds the biased leaky
    ReLU. Works on the last dimension of any ``(..., in_dim)`` input."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if not self.activation:
            return F.linear(x, self.weight * self.scale, bias)
        out = F.linear(x, self.weight * self.scale)
        return F.leaky_relu(out if bias is None else out + bias, 0.2) * SQRT2

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Convolution with the equalised learning rate (weights N(0, 1) scaled by 1/sqrt(fan_in))."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, {k}, stride={self.stride}, padding={self.padding}"


class PixelNorm(nn.Module):
    """Normalise each latent vector (last dimension) to unit root-mean-square."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-8)


# ---------------------------------------------------------------------------------------------
# Haar wavelets


def haar_kernels() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The 2x2 orthonormal Haar filters ``ll, lh, hl, hh`` (low/high pass along rows, then columns)."""
    low = torch.full((1, 2), 2**-0.5)
    high = low.clone()
    high[0, 0] = -high[0, 0]
    return low.T * low, high.T * low, low.T * high, high.T * high


class HaarTransform(nn.Module):
    """One level of the 2-D Haar DWT: ``(B, C, H, W)`` -> ``(B, 4C, H/2, W/2)``, sub-bands
    ``[LL, LH, HL, HH]`` each with all C channels."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        for name, kernel in zip(("ll", "lh", "hl", "hh"), haar_kernels(), strict=True):
            self.register_buffer(name, kernel)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([upfirdn2d(x, k, down=2) for k in (self.ll, self.lh, self.hl, self.hh)], dim=1)


class InverseHaarTransform(nn.Module):
    """Inverse of :class:`HaarTransform`: ``(B, 4C, H, W)`` -> ``(B, C, 2H, 2W)``."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        for name, kernel, sign in zip(("ll", "lh", "hl", "hh"), haar_kernels(), (1, -1, -1, 1), strict=True):
            self.register_buffer(name, kernel * sign)

    def forward(self, x: Tensor) -> Tensor:
        bands = x.chunk(4, dim=1)
        kernels = (self.ll, self.lh, self.hl, self.hh)
        return sum(upfirdn2d(band, k, up=2, pad=(1, 0, 1, 0)) for band, k in zip(bands, kernels, strict=True))


# ---------------------------------------------------------------------------------------------
# Positions and statistics


@functools.lru_cache(maxsize=32)
def sinusoidal_grid(height: int, width: int, channels: int, device: torch.device | str = "cpu") -> Tensor:
    """The 2-D sinusoidal position encoding (SPE) of "Positional Encoding as Spatial Inductive Bias
    in GANs", channels-last ``(height, width, channels)``, float32; cached, treat as read-only.

    Channels ``[0, channels/2)`` encode the column, the rest the row. Positions count from 1;
    each half is ``[sin(p f_i), cos(p f_i)]`` with ``f_i = 10000 ** (-i / (n - 1))``,
    ``n = channels / 4`` frequencies.
    """
    if channels % 4:
        raise ValueError(f"sinusoidal position grid needs channels divisible by 4, got {channels}")
    with torch.inference_mode(False), torch.no_grad():
        half = channels // 4
        freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=device) * -(math.log(10000) / (half - 1)))

        def encode(length: int) -> Tensor:
            angles = torch.arange(1, length + 1, dtype=torch.float32, device=device)[:, None] * freqs[None, :]
            return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # length, channels/2

        cols = encode(width)[None, :, :].expand(height, width, channels // 2)
        rows = encode(height)[:, None, :].expand(height, width, channels // 2)
        return torch.cat([cols, rows], dim=-1)


def minibatch_stddev(x: Tensor, group_size: int = 4, num_features: int = 1) -> Tensor:
    """Append the minibatch standard deviation as ``num_features`` extra channels (StyleGAN).

    Groups are strided: with G = min(B, group_size) groups, sample b is grouped with the samples
    ``b mod (B/G)`` apart. B must be divisible by G.
    """
    b, c, h, w = x.shape
    group = min(b, group_size)
    if b % group:
        raise ValueError(f"minibatch standard deviation: batch {b} is not divisible by its group size {group}; "
                         f"use a batch that is a multiple of {group_size} (or smaller than it)")
    y = x.view(group, -1, num_features, c // num_features, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
    y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)  # B/G, F, 1, 1
    return torch.cat([x, y.repeat(group, 1, h, w)], dim=1)


__all__ = [
    "Blur", "BlurDownsample", "BlurUpsample", "EqualConv2d", "EqualLinear", "FusedLeakyReLU", "HaarTransform",
    "InverseHaarTransform", "PixelNorm", "ScaledLeakyReLU", "fused_leaky_relu", "haar_kernels", "make_kernel",
    "minibatch_stddev", "sinusoidal_grid", "upfirdn2d",
]

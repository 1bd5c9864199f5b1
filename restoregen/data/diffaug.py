"""Differentiable augmentation of image batches for GAN discriminators, on any device.

The operations of DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
Training", 2020), which StyleSwin's balanced consistency regularisation (bCR, its ``CR_DiffAug``)
also uses:

* ``flip``: mirror left-right with probability 0.5;
* ``translation``: shift by up to 1/8 of the size in whole pixels, filling with zeros (kornia);
* ``color``: brightness ``+ U(-0.5, 0.5)``, saturation (deviation from the channel mean times
  ``U(0, 2)``), contrast (deviation from the image mean times ``U(0.5, 1.5)``), in that order;
* ``cutout``: zero a square of half the size at a random centre (clipped at the borders).

Each operation draws its parameters per sample and, as in ADA (Karras et al. 2020), applies to a
sample with probability ``p`` (the colour ones each on their own). Values are not clamped, so the
operations work in any normalisation (StyleSwin's ImageNet-normalised space included), and the
gradient reaches the input, so a generator can be trained through them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

OPERATIONS = ("flip", "translation", "color", "cutout")
BCR_POLICY = ("flip", "translation", "color", "cutout")  # StyleSwin's CR_DiffAug
DIFFAUGMENT_POLICY = ("color", "translation", "cutout")  # DiffAugment's default for unconditional GANs


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """``"color,translation,cutout"`` (or a list) -> the operation names, checked."""
    names = [n.strip() for n in policy.split(",")] if isinstance(policy, str) else list(policy)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in OPERATIONS]
    if unknown or not names:
        problem = f"unknown augmentation {unknown[0]!r}" if unknown else "empty augmentation policy"
        raise ValueError(f"{problem}; known: {', '.join(OPERATIONS)}")
    return tuple(names)


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) * (high - low) + low


def _flip(x: Tensor) -> Tensor:
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


def _brightness(x: Tensor) -> Tensor:
    return x + _uniform(x, -0.5, 0.5)


def _saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _uniform(x, 0.0, 2.0) + mean


def _contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def _translation(x: Tensor, ratio: float = 1 / 8) -> Tensor:
    from kornia.geometry.transform import translate

    b, _, h, w = x.shape
    limits = torch.tensor([int(w * ratio + 0.5), int(h * ratio + 0.5)], device=x.device)
    shifts = torch.floor(torch.rand(b, 2, device=x.device) * (2 * limits + 1)) - limits
    return translate(x, shifts.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def _cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    b, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - size_h % 2, (b, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + 1 - size_w % 2, (b, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    inside_rows = (rows >= top) & (rows < top + size_h)
    inside_cols = (cols >= left) & (cols < left + size_w)
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


_STEPS: dict[str, tuple[Callable[[Tensor], Tensor], ...]] = {
    "flip": (_flip,),
    "translation": (_translation,),
    "color": (_brightness, _saturation, _contrast),
    "cutout": (_cutout,),
}


def diff_augment(x: Tensor, policy: Sequence[str] = DIFFAUGMENT_POLICY, p: float = 1.0) -> Tensor:
    """Augment the ``(B, C, H, W)`` batch ``x`` by the operations of ``policy``, in the order of
    :data:`OPERATIONS`, each applied to a sample with probability ``p``."""
    if p <= 0:
        return x
    for name in OPERATIONS:
        if name not in policy:
            continue
        for step in _STEPS[name]:
            if p >= 1:
                x = step(x)
            else:
                chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
                x = torch.where(chosen, step(x), x)
    return x.contiguous()


__all__ = ["BCR_POLICY", "DIFFAUGMENT_POLICY", "OPERATIONS", "diff_augment", "parse_policy"]

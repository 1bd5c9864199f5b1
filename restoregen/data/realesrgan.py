"""Real-ESRGAN's synthetic degradations (Wang et al., ICCV-W 2021), used by the Real-* recipes
(RealHATMSEModel, RealHATGANModel, RealDRCT*, RealESRNet/RealESRGAN).

* :class:`RealESRGANDataset` loads a GT crop and draws the three blur kernels per item (worker side).
* :class:`SecondOrderDegradation` turns a GT batch into an LQ batch on the training device: blur,
  random resize, Gaussian/Poisson noise, JPEG, twice, then the final sinc filter and resize. It
  uses basicsr's noise, JPEG and sharpening utilities and kornia's batched ``filter2d``.
* :class:`PairPool` is the training-pair queue that mixes degradations across batches.

The option names and their meanings are those of the official option files.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .._compat import import_basicsr
from .files import ImageReader, gt_paths
from .paired import SRDataset, augment

KERNEL_SIZES = tuple(range(7, 22, 2))  # the official kernel sizes, padded to 21
KERNEL_PAD_TO = 21
CROP_PAD_SIZE = 400  # the official GT crop before degradation (hard-coded there too)


def _blur_kernel(opt: dict, suffix: str) -> np.ndarray:
    degradations = import_basicsr("data.degradations")
    size = random.choice(KERNEL_SIZES)
    if np.random.uniform() < opt[f"sinc_prob{suffix}"]:
        cutoff = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
        kernel = degradations.circular_lowpass_kernel(cutoff, size, pad_to=False)
    else:
        sigma = opt[f"blur_sigma{suffix}"]
        kernel = degradations.random_mixed_kernels(
            opt[f"kernel_list{suffix}"], opt[f"kernel_prob{suffix}"], size, sigma, sigma, [-math.pi, math.pi],
            opt[f"betag_range{suffix}"], opt[f"betap_range{suffix}"], noise_range=None)
    pad = (KERNEL_PAD_TO - size) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad)))


def _final_sinc_kernel(opt: dict) -> np.ndarray:
    if np.random.uniform() < opt["final_sinc_prob"]:
        size = random.choice(KERNEL_SIZES)
        cutoff = np.random.uniform(np.pi / 3, np.pi)
        return import_basicsr("data.degradations").circular_lowpass_kernel(cutoff, size, pad_to=KERNEL_PAD_TO)
    pulse = np.zeros((KERNEL_PAD_TO, KERNEL_PAD_TO), np.float32)
    pulse[KERNEL_PAD_TO // 2, KERNEL_PAD_TO // 2] = 1
    return pulse


class RealESRGANDataset(SRDataset):
    """GT crops (flipped/rotated, then reflect-padded or cropped to 400x400) with the blur kernels
    of the two degradation stages and the final sinc filter: ``gt``, ``kernel1``, ``kernel2``,
    ``sinc_kernel``. The LQ is made on the device by :class:`SecondOrderDegradation`."""

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        self.paths = gt_paths(opt)
        self.reader = ImageReader(opt, {"gt": opt["dataroot_gt"]})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        import cv2

        path = self.paths[index]
        gt = self.reader.read(path, "gt")
        (gt,) = augment([gt], self.opt.get("use_hflip", False), self.opt.get("use_rot", False))
        height, width = gt.shape[:2]
        if height < CROP_PAD_SIZE or width < CROP_PAD_SIZE:
            gt = cv2.copyMakeBorder(gt, 0, max(0, CROP_PAD_SIZE - height), 0, max(0, CROP_PAD_SIZE - width),
                                    cv2.BORDER_REFLECT_101)
        if gt.shape[0] > CROP_PAD_SIZE or gt.shape[1] > CROP_PAD_SIZE:
            top = random.randint(0, gt.shape[0] - CROP_PAD_SIZE)
            left = random.randint(0, gt.shape[1] - CROP_PAD_SIZE)
            gt = gt[top:top + CROP_PAD_SIZE, left:left + CROP_PAD_SIZE]
        kernels = {"kernel1": _blur_kernel(self.opt, ""), "kernel2": _blur_kernel(self.opt, "2"),
                   "sinc_kernel": _final_sinc_kernel(self.opt)}
        item = self._finish({"gt": gt, "gt_path": path})
        item.update({key: torch.from_numpy(np.asarray(k, np.float32)) for key, k in kernels.items()})
        return item


def _filter(images: Tensor, kernels: Tensor) -> Tensor:
    import kornia

    return kornia.filters.filter2d(images, kernels.to(images.dtype), border_type="reflect")


class SecondOrderDegradation(torch.nn.Module):
    """The two-stage degradation on device; ``opt`` is the option file's top level (``scale``,
    ``resize_prob``, ``noise_range``, ... ``jpeg_range2``). Two shares of batches (both 0 by
    default, as in Real-ESRGAN) skip the blur and random resizes and start from the MATLAB-bicubic
    downscale: ``clean_prob`` keeps it as it is, ``bicubic_degrade_prob`` adds the second stage's
    noise and JPEG to it. Randomness comes from Python's ``random``, numpy and torch, all saved in
    checkpoints."""

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt["scale"])
        self.jpeg = import_basicsr("utils.diffjpeg").DiffJPEG(differentiable=False)
        self.sharpen = import_basicsr("utils.img_process_util").USMSharp()
        self.clean_prob = float(opt.get("clean_prob", 0.0))
        self.bicubic_degrade_prob = float(opt.get("bicubic_degrade_prob", 0.0))

    def _bicubic(self, images: Tensor) -> Tensor:
        imresize = import_basicsr("utils.matlab_functions").imresize
        return torch.stack([imresize(image, 1 / self.scale) for image in images])

    def _resize(self, images: Tensor, probs: list[float], scale_range: list[float], size=None) -> Tensor:
        direction = random.choices(["up", "down", "keep"], probs)[0]
        if direction == "up":
            factor = np.random.uniform(1, scale_range[1])
        elif direction == "down":
            factor = np.random.uniform(scale_range[0], 1)
        else:
            factor = 1
        mode = random.choice(["area", "bilinear", "bicubic"])
        if size is None:
            return F.interpolate(images, scale_factor=factor, mode=mode)
        return F.interpolate(images, size=(int(size[0] * factor), int(size[1] * factor)), mode=mode)

    def _noise(self, images: Tensor, suffix: str) -> Tensor:
        degradations = import_basicsr("data.degradations")
        gray = self.opt[f"gray_noise_prob{suffix}"]
        if np.random.uniform() < self.opt[f"gaussian_noise_prob{suffix}"]:
            return degradations.random_add_gaussian_noise_pt(
                images, sigma_range=self.opt[f"noise_range{suffix}"], clip=True, rounds=False, gray_prob=gray)
        return degradations.random_add_poisson_noise_pt(
            images, scale_range=self.opt[f"poisson_scale_range{suffix}"], gray_prob=gray, clip=True, rounds=False)

    def _compress(self, images: Tensor, quality_range: list[float]) -> Tensor:
        quality = images.new_zeros(images.size(0)).uniform_(*quality_range)
        return self.jpeg(torch.clamp(images, 0, 1), quality=quality)

    def _resize_back_and_sinc(self, images: Tensor, size: tuple[int, int], sinc: Tensor) -> Tensor:
        mode = random.choice(["area", "bilinear", "bicubic"])
        return _filter(F.interpolate(images, size=size, mode=mode), sinc)

    @torch.no_grad()
    def forward(self, gt: Tensor, kernel1: Tensor, kernel2: Tensor, sinc_kernel: Tensor) -> Tensor:
        """LQ batch (rounded to 8 bit) for the GT batch ``gt`` (B, 3, H, W) in [0, 1]."""
        opt = self.opt
        height, width = gt.shape[-2:]
        if self.clean_prob or self.bicubic_degrade_prob:
            draw = np.random.uniform()
            if draw < self.clean_prob:
                return _to_8bit(self._bicubic(gt))
            if draw < self.clean_prob + self.bicubic_degrade_prob:
                return _to_8bit(self._compress(self._noise(self._bicubic(gt), "2"), opt["jpeg_range2"]))
        out = _filter(gt, kernel1)
        out = self._resize(out, opt["resize_prob"], opt["resize_range"])
        out = self._compress(self._noise(out, ""), opt["jpeg_range"])
        if np.random.uniform() < opt["second_blur_prob"]:
            out = _filter(out, kernel2)
        out = self._resize(out, opt["resize_prob2"], opt["resize_range2"], (height / self.scale, width / self.scale))
        out = self._noise(out, "2")
        lq_size = (height // self.scale, width // self.scale)
        if np.random.uniform() < 0.5:  # [resize back + sinc] then JPEG, or the other order
            out = self._compress(self._resize_back_and_sinc(out, lq_size, sinc_kernel), opt["jpeg_range2"])
        else:
            out = self._resize_back_and_sinc(self._compress(out, opt["jpeg_range2"]), lq_size, sinc_kernel)
        return _to_8bit(out)


def _to_8bit(images: Tensor) -> Tensor:
    return torch.clamp((images * 255.0).round(), 0, 255) / 255.0


def random_crop_pair(gts: list[Tensor], lq: Tensor, gt_size: int, scale: int) -> tuple[list[Tensor], Tensor]:
    """The same random crop of batched GT tensors and their LQ (draws as basicsr's paired_random_crop)."""
    lq_size = gt_size // scale
    top = random.randint(0, lq.shape[-2] - lq_size)
    left = random.randint(0, lq.shape[-1] - lq_size)
    lq = lq[..., top:top + lq_size, left:left + lq_size]
    gts = [g[..., top * scale:top * scale + gt_size, left * scale:left * scale + gt_size] for g in gts]
    return gts, lq


class PairPool:
    """A queue of training pairs: once full, each batch is swapped with a random slice of it, so a
    batch mixes degradations drawn for different batches (Real-ESRGAN's ``queue_size``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lq: Tensor | None = None
        self.gt: Tensor | None = None
        self.filled = 0

    @torch.no_grad()
    def __call__(self, lq: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        batch = lq.size(0)
        if self.lq is None:
            if self.size % batch:
                raise ValueError(f"queue_size {self.size} is not a multiple of the batch size {batch}")
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        if self.filled < self.size:
            self.lq[self.filled:self.filled + batch] = lq
            self.gt[self.filled:self.filled + batch] = gt
            self.filled += batch
            return lq, gt
        order = torch.randperm(self.size)
        self.lq, self.gt = self.lq[order], self.gt[order]
        out_lq, out_gt = self.lq[:batch].clone(), self.gt[:batch].clone()
        self.lq[:batch], self.gt[:batch] = lq, gt
        return out_lq, out_gt

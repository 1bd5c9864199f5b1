"""Super-resolution datasets in BasicSR's format: each item is a dict with ``lq`` and ``gt``
tensors (RGB, (C, H, W), [0, 1]) and their paths.

* :class:`PairedImageDataset`: GT and LQ folders (or LMDB stores).
* :class:`BicubicPairedDataset`: GT only; the LQ is made on the fly by MATLAB-compatible bicubic
  (basicsr's ``imresize``). HAT's ``ImageNetPairedDataset`` is this dataset.
* :class:`SingleImageDataset`: LQ only (testing).

Training items are random crops (``gt_size``) with random flips and 90-degree rotations
(``use_hflip``, ``use_rot``); randomness comes from Python's ``random`` as in BasicSR, which the
loader seeds per item (see :mod:`restoregen.data.loader`).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset

from .._compat import import_basicsr
from .files import ImageReader, gt_paths, lq_paths, paired_paths

# LQ pixels of context around a bicubic training crop: MATLAB's antialiased cubic kernel reaches
# 2 LQ pixels on each side, so with 3 the crop's LQ equals the whole image's LQ at that place.
BICUBIC_CONTEXT = 3


def augment(images: list[np.ndarray], hflip: bool, rotation: bool) -> list[np.ndarray]:
    """The same random horizontal flip / vertical flip / transpose on every image (BasicSR's draw
    order: hflip, vflip, rot90)."""
    flip_h = hflip and random.random() < 0.5
    flip_v = rotation and random.random() < 0.5
    transpose = rotation and random.random() < 0.5
    out = []
    for image in images:
        if flip_h:
            image = image[:, ::-1]
        if flip_v:
            image = image[::-1]
        if transpose:
            image = image.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(image))
    return out


def random_lq_window(lq_height: int, lq_width: int, lq_size: int, source: str) -> tuple[int, int]:
    """Top-left corner of a random ``lq_size`` square (the draws of basicsr's paired_random_crop)."""
    if lq_height < lq_size or lq_width < lq_size:
        raise ValueError(f"{source}: LQ size {lq_height}x{lq_width} is smaller than the training patch "
                         f"{lq_size}x{lq_size} (gt_size / scale)")
    return random.randint(0, lq_height - lq_size), random.randint(0, lq_width - lq_size)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """BGR (H, W, C) float32 -> RGB (C, H, W) tensor (gray (H, W, 1) stays one channel)."""
    if image.shape[2] == 3:
        image = image[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class SRDataset(Dataset):
    """Shared steps: colour space, tensor conversion and normalisation of an item."""

    def __init__(self, opt: dict) -> None:
        self.opt = opt
        self.scale = int(opt.get("scale", 1))
        self.train = opt.get("phase", "train") == "train"

    def _finish(self, item: dict) -> dict:
        y_only = self.opt.get("color") == "y"
        bgr2ycbcr = import_basicsr("utils.color_util").bgr2ycbcr if y_only else None
        for key in ("lq", "gt"):
            if key in item:
                image = item[key]
                if y_only:
                    image = bgr2ycbcr(image, y_only=True)[..., None]
                tensor = to_tensor(image)
                if self.opt.get("mean") is not None or self.opt.get("std") is not None:
                    mean = torch.tensor(self.opt.get("mean") or [0.0] * tensor.shape[0]).view(-1, 1, 1)
                    std = torch.tensor(self.opt.get("std") or [1.0] * tensor.shape[0]).view(-1, 1, 1)
                    tensor = (tensor - mean) / std
                item[key] = tensor
        return item


class PairedImageDataset(SRDataset):
    """GT and LQ folders (or LMDB stores); LQ names follow ``filename_tmpl``."""

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        self.paths = paired_paths(opt)
        self.reader = ImageReader(opt, {"lq": opt["dataroot_lq"], "gt": opt["dataroot_gt"]})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        paths = self.paths[index]
        gt = self.reader.read(paths["gt_path"], "gt")
        lq = self.reader.read(paths["lq_path"], "lq")
        s = self.scale
        if self.train:
            if gt.shape[0] != lq.shape[0] * s or gt.shape[1] != lq.shape[1] * s:
                raise ValueError(f"{paths['gt_path']}: GT {gt.shape[0]}x{gt.shape[1]} is not {s}x the LQ "
                                 f"{lq.shape[0]}x{lq.shape[1]}")
            size = self.opt["gt_size"] // s
            top, left = random_lq_window(lq.shape[0], lq.shape[1], size, paths["lq_path"])
            lq = lq[top:top + size, left:left + size]
            gt = gt[top * s:(top + size) * s, left * s:(left + size) * s]
            gt, lq = augment([gt, lq], self.opt.get("use_hflip", False), self.opt.get("use_rot", False))
        else:  # benchmark GT may be larger than scale x LQ
            gt = gt[:lq.shape[0] * s, :lq.shape[1] * s]
        return self._finish({"lq": lq, "gt": gt, **paths})


class BicubicPairedDataset(SRDataset):
    """GT images only; LQ = MATLAB bicubic downscaling of the GT (``imresize(gt, 1/scale)``).

    The GT is cropped to a multiple of ``scale``. Images smaller than ``gt_size`` are first
    enlarged (bilinear) as HAT's ``ImageNetPairedDataset`` does. Training downscales only the crop
    plus :data:`BICUBIC_CONTEXT` LQ pixels around it, which gives the same LQ as downscaling the
    whole image, at the cost of the patch.
    """

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        self.paths = gt_paths(opt)
        self.reader = ImageReader(opt, {"gt": opt["dataroot_gt"]})
        self._imresize = None

    def __len__(self) -> int:
        return len(self.paths)

    def downscale(self, image: np.ndarray) -> np.ndarray:
        if self._imresize is None:
            self._imresize = import_basicsr("utils.matlab_functions").imresize
        return self._imresize(image, 1 / self.scale).astype(np.float32)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        gt = self.reader.read(path, "gt")
        s = self.scale
        if self.train:
            gt_size = self.opt["gt_size"]
            if gt.shape[0] < gt_size or gt.shape[1] < gt_size:
                import cv2

                gt = cv2.resize(gt, (max(gt.shape[1], gt_size), max(gt.shape[0], gt_size)))
        gt = gt[:gt.shape[0] - gt.shape[0] % s, :gt.shape[1] - gt.shape[1] % s]
        if not self.train:
            return self._finish({"lq": self.downscale(gt), "gt": gt, "lq_path": path, "gt_path": path})

        size = self.opt["gt_size"] // s
        lq_h, lq_w = gt.shape[0] // s, gt.shape[1] // s
        top, left = random_lq_window(lq_h, lq_w, size, path)
        y0, x0 = max(top - BICUBIC_CONTEXT, 0), max(left - BICUBIC_CONTEXT, 0)
        y1, x1 = min(top + size + BICUBIC_CONTEXT, lq_h), min(left + size + BICUBIC_CONTEXT, lq_w)
        lq = self.downscale(gt[y0 * s:y1 * s, x0 * s:x1 * s])[top - y0:top - y0 + size, left - x0:left - x0 + size]
        gt = gt[top * s:(top + size) * s, left * s:(left + size) * s]
        gt, lq = augment([gt, lq], self.opt.get("use_hflip", False), self.opt.get("use_rot", False))
        return self._finish({"lq": lq, "gt": gt, "lq_path": path, "gt_path": path})


class SingleImageDataset(SRDataset):
    """LQ images only (testing without ground truth)."""

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        self.paths = lq_paths(opt)
        self.reader = ImageReader(opt, {"lq": opt["dataroot_lq"]})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        return self._finish({"lq": self.reader.read(path, "lq"), "lq_path": path})

"""Unconditional image datasets for GAN training: each item is ``{'img': (3, size, size), 'path'}``.

As StyleSwin's training script: the image is resized to ``size`` x ``size`` (Pillow bilinear,
torchvision's ``Resize((size, size))``; the aspect ratio is not kept), flipped horizontally with
probability 0.5 when ``use_hflip`` is set, converted to [0, 1] RGB and normalised with ``mean``
and ``std`` (default ImageNet's, the space StyleSwin's generator and discriminator work in).

* :class:`ImageFolderDataset`: every image under ``dataroot`` (recursively; torchvision's
  ``ImageFolder`` layout works as it is), or the files of ``image_list``.
* :class:`LMDBImageDataset`: an LMDB store written by stylegan2-pytorch's ``prepare_data.py``
  (key ``length``, images under ``<size>-<index:05d>``), StyleSwin's LSUN Church format.
"""

from __future__ import annotations

import io
import os
import random

import numpy as np
import torch
from torch.utils.data import Dataset

from .files import MAX_PIXELS, scan_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # restoregen.archs.styleswin's (not imported: data stays network-free)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_rgb(data: bytes | str, source: str, size: int):
    """Decode an image (bytes or a path) to a ``size`` x ``size`` RGB Pillow image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(f"{source}: {image.width}x{image.height} pixels is above the decode limit "
                                 f"of {MAX_PIXELS} pixels")
            image = image.convert("RGB")
    except OSError as error:
        raise ValueError(f"{source}: not a readable image ({error})") from None
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return image


class _GANImages(Dataset):
    def __init__(self, opt: dict) -> None:
        self.opt = opt
        self.size = int(opt["size"])
        self.hflip = bool(opt.get("use_hflip", False)) and opt.get("phase", "train") == "train"
        self.mean = torch.tensor(opt.get("mean") or IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(opt.get("std") or IMAGENET_STD).view(3, 1, 1)

    def _item(self, image, path: str) -> dict:
        array = np.asarray(image, dtype=np.uint8)
        if self.hflip and random.random() < 0.5:
            array = array[:, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float() / 255.0
        return {"img": (tensor - self.mean) / self.std, "path": path}


class ImageFolderDataset(_GANImages):
    """The images under ``dataroot`` (or its ``image_list``), resized to ``size``."""

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        root = opt["dataroot"]
        if not os.path.isdir(root):
            raise ValueError(f"folder {root!r} does not exist")
        names = opt.get("image_list") or scan_images(root)
        if not names:
            raise ValueError(f"no images found in {root!r}")
        self.paths = [os.path.join(root, name) for name in names]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        return self._item(load_rgb(path, path, self.size), path)


class LMDBImageDataset(_GANImages):
    """A stylegan2-pytorch ``prepare_data.py`` LMDB store (opened lazily, once per worker)."""

    def __init__(self, opt: dict) -> None:
        super().__init__(opt)
        self.root = opt["dataroot"]
        with self._open().begin(write=False) as txn:
            length = txn.get(b"length")
        if length is None:
            raise ValueError(f"{self.root!r} has no 'length' key: not a stylegan2-pytorch prepare_data.py store")
        self.length = int(length.decode())
        self._env = None

    def _open(self):
        import lmdb

        try:
            return lmdb.open(self.root, max_readers=32, readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as error:
            raise ValueError(f"cannot open LMDB store {self.root!r}: {error}") from None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if self._env is None:
            self._env = self._open()
        key = f"{self.size}-{index:05d}"
        with self._env.begin(write=False) as txn:
            data = txn.get(key.encode())
        source = f"{self.root}[{key}]"
        if data is None:
            raise ValueError(f"{source}: missing from the store")
        return self._item(load_rgb(data, source, self.size), source)

    def __getstate__(self) -> dict:  # workers open their own environment
        return {**self.__dict__, "_env": None}


__all__ = ["ImageFolderDataset", "LMDBImageDataset", "load_rgb"]

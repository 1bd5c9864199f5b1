"""Datasets in BasicSR's option-file format, the Real-ESRGAN degradations and resumable loading.

``build_dataset(opt)`` builds the dataset a ``datasets.<key>`` section names by ``type``.
"""

from __future__ import annotations

import importlib

from torch.utils.data import Dataset

# option-file type -> "module:Class" (imported on first use)
DATASETS: dict[str, str] = {
    "PairedImageDataset": "paired:PairedImageDataset",
    "BicubicPairedDataset": "paired:BicubicPairedDataset",
    "ImageNetPairedDataset": "paired:BicubicPairedDataset",  # HAT's name for the same thing
    "SingleImageDataset": "paired:SingleImageDataset",
    "RealESRGANDataset": "realesrgan:RealESRGANDataset",
    # unconditional images for GAN training (StyleSwin)
    "ImageFolderDataset": "images:ImageFolderDataset",
    "LMDBImageDataset": "images:LMDBImageDataset",
}


def dataset_class(name: str) -> type[Dataset]:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset type {name!r}; known: {', '.join(sorted(DATASETS))}")
    module, cls = DATASETS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_dataset(opt: dict) -> Dataset:
    """The dataset of one validated ``datasets.<key>`` section."""
    return dataset_class(opt["type"])(opt)


__all__ = ["DATASETS", "build_dataset", "dataset_class"]

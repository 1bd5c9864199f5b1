"""Datasets in BasicSR's option-file format, the Real-ESRGAN degradations and resumable loading.

``build_dataset(opt)`` builds the dataset a ``datasets.<key>`` section names by ``type``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..config.schema import BOOL, COUNT, FLOAT, INT, NUMBERS, STR, Choice, ListOf, Opt, OptionType, Spec

if TYPE_CHECKING:
    from torch.utils.data import Dataset

_CROP: dict[str, Spec] = {"gt_size": COUNT, "use_hflip": BOOL, "use_rot": BOOL}
_GT_SOURCE: dict[str, Spec] = {
    "dataroot_gt": STR,
    "meta_info_file": Opt(STR),
    "meta_info": Opt(STR),
    # restoregen: the GT files, relative to dataroot_gt (instead of scanning the folder)
    "image_list": Opt(ListOf(STR)),
}
KERNEL_LIST = ListOf(Choice(("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")))
_REAL_KERNELS: dict[str, Spec] = {
    f"{key}{suffix}": spec
    for suffix in ("", "2")
    for key, spec in {"blur_kernel_size": INT, "kernel_list": KERNEL_LIST, "kernel_prob": NUMBERS,
                      "sinc_prob": FLOAT, "blur_sigma": ListOf(FLOAT, 2), "betag_range": ListOf(FLOAT, 2),
                      "betap_range": ListOf(FLOAT, 2)}.items()
}

# option-file type -> "module:Class" (imported on first use) and the options of its section besides
# those every dataset takes (restoregen.config.basicsr)
DATASETS: dict[str, OptionType] = {
    "PairedImageDataset": OptionType("paired:PairedImageDataset",
                                     {**_GT_SOURCE, "dataroot_lq": STR, "filename_tmpl": STR, **_CROP}),
    # GT only; LQ made on the fly by MATLAB bicubic
    "BicubicPairedDataset": OptionType("paired:BicubicPairedDataset", {**_GT_SOURCE, "dataroot_lq": Opt(STR), **_CROP}),
    "ImageNetPairedDataset": OptionType("paired:BicubicPairedDataset",  # HAT's name for the same thing
                                        {**_GT_SOURCE, "dataroot_lq": Opt(STR), **_CROP}),
    "SingleImageDataset": OptionType("paired:SingleImageDataset",
                                     {"dataroot_lq": STR, "meta_info_file": Opt(STR), "filename_tmpl": STR}),
    "RealESRGANDataset": OptionType("realesrgan:RealESRGANDataset",
                                    {**_GT_SOURCE, **_REAL_KERNELS, "final_sinc_prob": FLOAT, **_CROP}),
    # restoregen: unconditional images for GAN training (StyleSwin), resized to `size`
    "ImageFolderDataset": OptionType("images:ImageFolderDataset", {"dataroot": STR, "size": COUNT, "use_hflip": BOOL,
                                                                   "image_list": Opt(ListOf(STR))}),
    "LMDBImageDataset": OptionType("images:LMDBImageDataset", {"dataroot": STR, "size": COUNT, "use_hflip": BOOL}),
}


def dataset_class(name: str) -> type[Dataset]:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset type {name!r}; known: {', '.join(sorted(DATASETS))}")
    module, cls = DATASETS[name].target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_dataset(opt: dict) -> Dataset:
    """The dataset of one validated ``datasets.<key>`` section."""
    return dataset_class(opt["type"])(opt)


__all__ = ["DATASETS", "build_dataset", "dataset_class"]

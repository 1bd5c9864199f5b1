"""Checking that the files and folders loaded options name exist (before anything is built or written)."""

from __future__ import annotations

from pathlib import Path

from .yaml_lines import option_error


def check_paths(opt: dict) -> None:
    """Check that the folders and files the options name exist (datasets, meta info files,
    pretrained networks); raise :class:`OptionError` naming the first one that does not."""
    for name, dataset in opt["datasets"].items():
        lmdb = dataset.get("io_backend", {}).get("type") == "lmdb" or dataset["type"] == "LMDBImageDataset"
        for key in ("dataroot_gt", "dataroot_lq", "dataroot"):
            folder = dataset.get(key)
            if folder is None:
                continue
            if not Path(folder).is_dir():
                kind = "LMDB folder" if lmdb else "folder"
                raise option_error(opt, f"datasets.{name}.{key}", f"{kind} {folder!r} does not exist")
        for key in ("meta_info_file", "meta_info"):
            meta = dataset.get(key)
            if meta is not None and not lmdb and not Path(meta).is_file():
                raise option_error(opt, f"datasets.{name}.{key}", f"file {meta!r} does not exist")
        root = dataset.get("dataroot_gt")
        for i, item in enumerate(dataset.get("image_list") or []):
            if root is not None and not (Path(root) / item).is_file():
                raise option_error(opt, f"datasets.{name}.image_list[{i}]",
                                   f"file {str(Path(root) / item)!r} does not exist")
    for key, value in opt.get("path", {}).items():
        if key.startswith("pretrain_network_") and value is not None and not Path(value).is_file():
            raise option_error(opt, f"path.{key}", f"file {value!r} does not exist")
    fid = (opt.get("val") or {}).get("fid") or {}
    if fid.get("inception_weights") is not None and not Path(fid["inception_weights"]).is_file():
        raise option_error(opt, "val.fid.inception_weights", f"file {fid['inception_weights']!r} does not exist")
    if fid.get("real_images") is not None and not Path(fid["real_images"]).exists():
        raise option_error(opt, "val.fid.real_images",
                           f"{fid['real_images']!r} does not exist (a folder of images or a pytorch-fid .npz)")


__all__ = ["check_paths"]

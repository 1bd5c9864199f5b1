"""Finding and reading the images of a dataset: folders, meta-info files, inline image lists and
LMDB stores (BasicSR's layout: ``<name>.lmdb/{data.mdb, meta_info.txt}``, keys without extension)."""

from __future__ import annotations

import io
import os

import numpy as np

from .._compat import import_basicsr

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_PIXELS = 1 << 28  # refuse to decode images above 268 megapixels (decompression bombs)


def scan_images(folder: str) -> list[str]:
    """Image files under ``folder`` (recursive), as paths relative to it, sorted."""
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(IMAGE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


def _meta_names(meta_file: str) -> list[str]:
    with open(meta_file, encoding="utf-8") as handle:
        return [line.strip().split(" ")[0] for line in handle if line.strip()]


def lmdb_keys(folder: str) -> list[str]:
    """The keys of a BasicSR LMDB store (first field of ``meta_info.txt`` without extension)."""
    if not folder.endswith(".lmdb"):
        raise ValueError(f"LMDB folder {folder!r} must end with '.lmdb'")
    return [os.path.splitext(name)[0] for name in _meta_names(os.path.join(folder, "meta_info.txt"))]


def is_lmdb(opt: dict) -> bool:
    return opt.get("io_backend", {}).get("type", "disk") == "lmdb"


def gt_paths(opt: dict) -> list[str]:
    """GT image paths (or LMDB keys) of a dataset section: ``image_list``, ``meta_info``/
    ``meta_info_file``, LMDB meta info, or a folder scan, in that order of preference."""
    root = opt["dataroot_gt"]
    if is_lmdb(opt):
        return lmdb_keys(root)
    if opt.get("image_list"):
        names = opt["image_list"]
    elif opt.get("meta_info") or opt.get("meta_info_file"):
        names = _meta_names(opt.get("meta_info") or opt["meta_info_file"])
    else:
        names = scan_images(root)
    if not names:
        raise ValueError(f"no images found in {root!r}")
    return [os.path.join(root, name) for name in names]


def paired_paths(opt: dict) -> list[dict[str, str]]:
    """``{'gt_path', 'lq_path'}`` for each pair of a paired dataset section; the LQ name is the GT
    stem through ``filename_tmpl`` (default ``'{}'``) plus the GT suffix, as in BasicSR."""
    gt_root, lq_root = opt["dataroot_gt"], opt["dataroot_lq"]
    if is_lmdb(opt):
        keys = lmdb_keys(gt_root)
        if set(keys) != set(lmdb_keys(lq_root)):
            raise ValueError(f"LMDB stores {gt_root!r} and {lq_root!r} hold different keys")
        return [{"gt_path": key, "lq_path": key} for key in sorted(keys)]
    template = opt.get("filename_tmpl", "{}")
    pairs = []
    for gt_path in gt_paths(opt):
        stem, suffix = os.path.splitext(os.path.relpath(gt_path, gt_root))
        lq_name = os.path.join(os.path.dirname(stem), template.format(os.path.basename(stem)) + suffix)
        lq_path = os.path.join(lq_root, lq_name)
        if not os.path.isfile(lq_path):
            raise ValueError(f"no LQ image for {gt_path!r}: expected {lq_path!r} (filename_tmpl {template!r})")
        pairs.append({"gt_path": gt_path, "lq_path": lq_path})
    return pairs


def lq_paths(opt: dict) -> list[str]:
    root = opt["dataroot_lq"]
    if is_lmdb(opt):
        return lmdb_keys(root)
    names = _meta_names(opt["meta_info_file"]) if opt.get("meta_info_file") else scan_images(root)
    return [os.path.join(root, name) for name in names]


def decode(data: bytes, source: str) -> np.ndarray:
    """Decode image bytes to float32 BGR (H, W, 3) in [0, 1]; gray becomes 3 channels, alpha is
    dropped, 16-bit is scaled to 8-bit as BasicSR reads it."""
    import cv2
    from PIL import Image

    if not data:
        raise ValueError(f"{source}: empty or missing image data")
    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            width, height = probe.size
    except Exception:  # noqa: BLE001 - cv2 may still read formats Pillow does not know
        width = height = 0
    if width * height > MAX_PIXELS:
        raise ValueError(f"{source}: {width}x{height} pixels is above the decode limit of {MAX_PIXELS} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{source}: not a readable image")
    return image.astype(np.float32) / 255.0


class ImageReader:
    """Reads images of a dataset from disk or LMDB; opens its backend lazily, once per process
    (so it works in dataloader workers)."""

    def __init__(self, opt: dict, roots: dict[str, str]) -> None:
        self._backend_opt = {k: v for k, v in opt.get("io_backend", {"type": "disk"}).items()}
        self._roots = roots  # client key -> folder ('gt', 'lq')
        self._client = None

    def _open(self):
        file_client = import_basicsr("utils.file_client").FileClient
        options = dict(self._backend_opt)
        backend = options.pop("type", "disk")
        if backend == "lmdb":
            options["db_paths"] = list(self._roots.values())
            options["client_keys"] = list(self._roots)
        return file_client(backend, **options)

    def read(self, path: str, key: str) -> np.ndarray:
        if self._client is None:
            self._client = self._open()
        try:
            data = self._client.get(path, key)
        except OSError as error:
            raise OSError(f"cannot read {path}: {error.strerror or error}") from None
        return decode(data, path)

    def __getstate__(self) -> dict:  # workers open their own backend
        return {**self.__dict__, "_client": None}



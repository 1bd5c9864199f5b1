"""Image I/O: formats survive a round trip, EXIF orientation matches Pillow, bad files say why."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from restoregen.inference.io import (
    ImageData, ImageReadError, atomic_write_bytes, fitting_extension, read_image, write_image,
)

RNG = np.random.default_rng(0)


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with a tiny data stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (4, np.uint8), (1, np.uint8), (3, np.uint16),
                                            (4, np.uint16), (1, np.uint16)])
@pytest.mark.parametrize("ext", ["png", "tif"])
def test_lossless_round_trip(tmp_path: Path, channels: int, dtype, ext: str) -> None:
    top = np.iinfo(dtype).max
    stored = RNG.integers(0, top + 1, size=(7, 9, channels)).astype(dtype).squeeze()
    path = tmp_path / f"image.{ext}"
    cv2.imwrite(str(path), stored)
    image = read_image(path)
    assert image.bit_depth == (16 if dtype == np.uint16 else 8)
    assert image.gray == (channels == 1) and (image.alpha is not None) == (channels == 4)
    if channels >= 3:  # RGB order inside, BGR in OpenCV
        assert np.array_equal(np.round(image.pixels[:, :, 0] * top), stored[:, :, 2])
    write_image(tmp_path / f"copy.{ext}", image)
    assert np.array_equal(cv2.imread(str(tmp_path / f"copy.{ext}"), cv2.IMREAD_UNCHANGED), stored)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int, fmt: str) -> None:
    stored = Image.fromarray(RNG.integers(0, 256, size=(6, 10, 3), dtype=np.uint8))
    exif = stored.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"photo.{fmt.lower()}"
    stored.save(path, fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))
    with Image.open(path) as reference:
        upright = np.asarray(ImageOps.exif_transpose(reference), dtype=np.float32) / 255
    image = read_image(path)
    assert image.pixels.shape == upright.shape
    assert np.abs(image.pixels - upright).max() < (1e-6 if fmt == "PNG" else 0.1)


def test_bad_files_say_why(tmp_path: Path) -> None:
    ok, jpeg = cv2.imencode(".jpg", RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8))
    files = {
        "empty.png": (b"", "empty file"),
        "notes.png": (b"just some text\n", "not an image"),
        "cut.jpg": (jpeg.tobytes()[:len(jpeg) // 2], r"corrupt or truncated image data \(image file is truncated"),
        "cut_header.jpg": (jpeg.tobytes()[:300], "broken image header"),
        "bomb.png": (_png_declaring(30000, 30000), r"declares 30000x30000 = 900,000,000 pixels, over the limit"),
    }
    for name, (data, reason) in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageReadError, match=reason):
            read_image(tmp_path / name)
    with pytest.raises(ImageReadError, match="over the limit of 100"):
        read_image(tmp_path / "cut.jpg", max_pixels=100)
    with pytest.raises(ImageReadError, match="cannot read the file"):
        read_image(tmp_path / "missing.png")


def test_fitting_extension() -> None:
    plain, rgba, deep = (ImageData(np.zeros((2, 2, 3), np.float32)), ImageData(np.zeros((2, 2, 3), np.float32),
                         np.ones((2, 2), np.float32)), ImageData(np.zeros((2, 2, 1), np.float32), bit_depth=16))
    assert [fitting_extension(e, plain) for e in ("jpg", "png", ".WEBP")] == ["jpg", "png", "webp"]
    assert [fitting_extension(e, rgba) for e in ("jpg", "webp", "tif")] == ["png", "webp", "tif"]
    assert [fitting_extension(e, deep) for e in ("jpg", "webp", "tif")] == ["png", "png", "tif"]


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "image.png"
    atomic_write_bytes(target, b"old")

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["image.png"]  # no temporary file left


def test_written_file_permissions_follow_umask(tmp_path: Path) -> None:
    target = tmp_path / "image.bin"
    atomic_write_bytes(target, b"data")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert target.read_bytes() == b"data"

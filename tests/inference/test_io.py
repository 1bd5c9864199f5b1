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

from restoregen.fileio import atomic_write_bytes
from restoregen.imageio import (
    ImageData,
    ImageReadError,
    encode_image,
    fitting_extension,
    image_grid,
    read_image,
    write_image,
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


def _float_tiff_declaring(width: int, height: int, samples: int = 3) -> bytes:
    """A little-endian TIFF header for ``samples`` float32 samples per pixel, without pixel data."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 32), (277, 3, samples), (339, 3, 3)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float_tiff_is_read_and_written_back(tmp_path: Path, channels: int) -> None:
    stored = RNG.random((12, 10, channels), dtype=np.float32) * np.float32(1.5)  # float files may exceed 1
    cv2.imwrite(str(tmp_path / "float.tif"), stored if channels > 1 else stored[:, :, 0])
    image = read_image(tmp_path / "float.tif")
    assert image.bit_depth == 32 and image.pixels.dtype == np.float32
    colour = stored[:, :, :1] if channels == 1 else stored[:, :, 2::-1]  # BGR(A) on disk
    assert np.array_equal(image.pixels, colour)
    assert (image.alpha is not None) == (channels == 4)
    assert [fitting_extension(e, image) for e in ("tif", "png", "jpg")] == ["tif", "png", "png"]
    write_image(tmp_path / "out.tif", image)
    assert np.array_equal(cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED).reshape(stored.shape), stored)
    write_image(tmp_path / "out.png", image)  # PNG holds 16 bits, clipped to [0, 1]
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.max() == 65535


def test_float_tiff_size_is_checked_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "bomb.tif").write_bytes(_float_tiff_declaring(30000, 30000))
    with pytest.raises(ImageReadError, match=r"declares 30000x30000 = 900,000,000 pixels, over the limit"):
        read_image(tmp_path / "bomb.tif")
    nan = np.full((4, 4, 3), np.nan, np.float32)
    cv2.imwrite(str(tmp_path / "nan.tif"), nan)
    with pytest.raises(ImageReadError, match="float32 samples include NaN or infinity"):
        read_image(tmp_path / "nan.tif")



@pytest.mark.parametrize("shape,bgr", [((16, 16, 3), False), ((16, 16, 3), True), ((16, 16), True),
                                       ((16, 16, 1), False)])
def test_uint8_arrays_are_written_exactly(tmp_path: Path, shape: tuple[int, ...], bgr: bool) -> None:
    array = RNG.integers(0, 256, size=shape).astype(np.uint8)
    array.flat[:2] = (0, 255)
    write_image(tmp_path / "out.png", ImageData.from_uint8(array, bgr=bgr))
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)  # BGR on disk
    expected = array[:, :, ::-1] if array.ndim == 3 and array.shape[2] == 3 and not bgr else array
    assert np.array_equal(written, expected.reshape(written.shape))


def test_every_uint8_value_survives() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    encoded = encode_image(ImageData.from_uint8(values), "png")
    assert np.array_equal(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED), values)


def test_image_grid_places_images_row_major_with_gaps() -> None:
    images = np.stack([np.full((3, 4, 3), i + 1, np.uint8) for i in range(5)])
    grid = image_grid(images, columns=3)
    assert grid.shape == (2 * 5 + 2, 3 * 6 + 2, 3)
    assert (grid[2:5, 2:6] == 1).all() and (grid[2:5, 8:12] == 2).all() and (grid[7:10, 8:12] == 5).all()
    assert (grid[7:10, 14:18] == 0).all() and (grid[:2] == 0).all()  # the empty cell and the gaps are black

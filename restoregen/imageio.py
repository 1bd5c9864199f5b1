"""Reading and writing image files: alpha, 16-bit, grayscale, EXIF orientation, safely. The one
image reader and writer of restoregen: upscaling, validation images, samples, GAN snapshots and
FreeSwim's PNG frames.

Pillow reads the header first: the declared size is checked against a pixel limit before anything
is decoded (decompression bombs), and the EXIF orientation is taken from it. OpenCV then decodes
the pixels unchanged (16-bit samples and alpha included; it ignores the orientation, which is
applied here). Float TIFFs (32-bit samples, as scientific and HDR tools write them) are read as
they are; Pillow cannot open colour ones, so their size is read from the TIFF header directly.
Writes go through :func:`restoregen.fileio.atomic_write_bytes`: a temporary file in the target
folder that is renamed into place, so an interrupted run never leaves a partial image.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .fileio import atomic_write_bytes

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageData", "ImageReadError", "encode_image", "fitting_extension",
    "image_grid", "read_image", "unreadable_format", "write_image",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
READABLE = "PNG, JPEG, BMP, TIFF, WebP"
DEFAULT_MAX_PIXELS = 64_000_000  # input pixels; raise it for larger photos (memory grows with scale**2)
KEEPS_ALPHA = frozenset({"png", "tif", "tiff", "webp"})
KEEPS_16BIT = frozenset({"png", "tif", "tiff"})  # also 32-bit float input: PNG gets 16 bits
KEEPS_FLOAT = frozenset({"tif", "tiff"})
FLOAT_DEPTH = 32  # ImageData.bit_depth of float images
_EXIF_ORIENTATION = 0x0112
_ORIENT_STEPS = {  # EXIF orientation -> (flip rows, flip columns, transpose) making the stored array upright
    2: (False, True, False), 3: (True, True, False), 4: (True, False, False), 5: (False, False, True),
    6: (True, False, True), 7: (True, True, True), 8: (False, True, True),
}


class ImageReadError(ValueError):
    """A file that is not a readable image; the message says why (without the file name)."""


@dataclass
class ImageData:
    """An upright image: ``pixels`` float32 (H, W, 1 or 3), RGB order, in [0, 1] (float files: as
    stored); ``alpha`` (H, W) or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8  # 8, 16 or 32 (float): the sample depth to write back

    @classmethod
    def from_uint8(cls, array: np.ndarray, bgr: bool = False) -> ImageData:
        """An 8-bit image from ``array``: uint8 (H, W) or (H, W, 1 or 3), RGB order (``bgr``: BGR,
        as OpenCV and basicsr's metrics use); a lossless format stores exactly these samples."""
        import numpy as np

        if array.ndim == 2:
            array = array[:, :, None]
        if bgr:
            array = array[:, :, ::-1]
        return cls(np.ascontiguousarray(array, dtype=np.float32) / np.float32(255))

    @property
    def gray(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return self.pixels.shape[0], self.pixels.shape[1]


@contextlib.contextmanager
def _pillow_pixel_limit(limit: int | None) -> Iterator[None]:
    """Pillow's own decompression-bomb guard, replaced by ours for the duration."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def unreadable_format(name: str) -> str:
    """Why a file called ``name`` is not read: its extension is not one of :data:`IMAGE_EXTENSIONS`."""
    suffix = os.path.splitext(name)[1]
    kind = f"{suffix[1:].upper()} is" if suffix else "a file without an extension is"
    return f"{kind} not a format restoregen reads ({READABLE})"


def _tiff_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, orientation) from the first IFD of a classic TIFF, or None if not one."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8 or struct.unpack(order + "H", data[2:4])[0] != 42:
        return None
    offset = struct.unpack(order + "I", data[4:8])[0]
    if offset + 2 > len(data):
        return None
    tags = {}
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    for i in range(count):
        entry = data[offset + 2 + 12 * i:offset + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if kind in (3, 4):  # SHORT or LONG, one value in the entry itself
            tags[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:])[0]
    if 256 not in tags or 257 not in tags:
        return None
    return tags[256], tags[257], tags.get(_EXIF_ORIENTATION, 1)


def _read_header(data: bytes, max_pixels: int) -> int:
    """Check the declared size against ``max_pixels``; return the EXIF orientation (1 = upright)."""
    from PIL import Image, UnidentifiedImageError

    with _pillow_pixel_limit(None):
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            image = None
        except Exception as error:  # Pillow raises many types for broken headers
            raise ImageReadError(f"broken image header ({error})") from None
    if image is None:  # Pillow has no mode for colour float TIFFs; OpenCV reads them
        tiff = _tiff_header(data)
        if tiff is None:
            raise ImageReadError(f"not an image (or not a format restoregen reads: {READABLE})")
        width, height, orientation = tiff
    else:
        with image:
            width, height = image.size
            try:
                orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
            except Exception:  # unreadable EXIF: treat as upright
                orientation = 1
    if width * height > max_pixels:
        raise ImageReadError(f"declares {width}x{height} = {width * height:,} pixels, over the limit of "
                             f"{max_pixels:,} (raise it with --max-pixels if the file is trusted)")
    return orientation if orientation in _ORIENT_STEPS else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, C) array (as ``PIL.ImageOps.exif_transpose`` does)."""
    flip_rows, flip_cols, transpose = _ORIENT_STEPS.get(orientation, (False, False, False))
    array = array[::-1] if flip_rows else array
    array = array[:, ::-1] if flip_cols else array
    return array.swapaxes(0, 1) if transpose else array


def _decode_failure(data: bytes) -> str:
    """Pillow's explanation of why the pixel data cannot be decoded."""
    from PIL import Image

    try:
        with _pillow_pixel_limit(None), Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as error:
        return str(error) or type(error).__name__
    return "OpenCV could not decode it"


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageData:
    """Read ``path`` as an upright :class:`ImageData`; raise :class:`ImageReadError` saying what is wrong."""
    import cv2
    import numpy as np

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageReadError(f"cannot read the file ({error.strerror or error})") from None
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    orientation = _read_header(data, max_pixels)
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(f"corrupt or truncated image data ({_decode_failure(data)})")
    if array.dtype == np.uint8:
        bit_depth, scale = 8, 1 / 255
    elif array.dtype == np.uint16:
        bit_depth, scale = 16, 1 / 65535
    elif array.dtype.kind == "f":
        bit_depth, scale = FLOAT_DEPTH, 1.0
        if not np.isfinite(array).all():
            raise ImageReadError(f"{array.dtype} samples include NaN or infinity")
    else:
        raise ImageReadError(f"unsupported sample type {array.dtype} (restoregen reads 8- and 16-bit integer "
                             "and float samples)")
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageReadError(f"unsupported number of channels: {channels}")
    array = _orient(array, orientation)
    pixels = array[:, :, :1] if channels <= 2 else array[:, :, 2::-1]  # BGR(A) -> RGB
    alpha = array[:, :, -1] if channels in (2, 4) else None
    return ImageData(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32) * np.float32(scale),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32) * np.float32(scale),
        bit_depth=bit_depth,
    )


def fitting_extension(ext: str, image: ImageData) -> str:
    """``ext`` (no dot), or ``"png"`` when ``ext`` cannot store the image's alpha or 16-bit samples
    (float images: TIFF keeps them float, PNG gets 16 bits)."""
    ext = ext.lower().lstrip(".")
    if (image.alpha is not None and ext not in KEEPS_ALPHA) or (image.bit_depth > 8 and ext not in KEEPS_16BIT):
        return "png"
    return ext


def _quantize(array: np.ndarray, bit_depth: int) -> np.ndarray:
    import numpy as np

    if bit_depth == FLOAT_DEPTH:  # float TIFF: the values as computed, not clipped
        return array.astype(np.float32)
    top = 65535 if bit_depth == 16 else 255
    out = np.clip(array, 0.0, 1.0) * np.float32(top) + np.float32(0.5)
    return out.astype(np.uint16 if bit_depth == 16 else np.uint8)


def encode_image(image: ImageData, ext: str) -> bytes:
    """The encoded file content of ``image`` in format ``ext`` (``png``, ``jpg``, ``webp``, ``tif``, ``bmp``)."""
    import cv2
    import numpy as np

    ext = ext.lower().lstrip(".")
    if ext in KEEPS_FLOAT:
        bit_depth = image.bit_depth
    elif ext in KEEPS_16BIT:
        bit_depth = min(image.bit_depth, 16)
    else:
        bit_depth = 8
    planes = [image.pixels[:, :, :1]] if image.gray else [image.pixels[:, :, ::-1]]  # RGB -> BGR
    if image.alpha is not None and ext in KEEPS_ALPHA:
        planes.append(image.alpha[:, :, None])
        if image.gray:  # OpenCV writes alpha only with colour: gray+alpha becomes BGRA
            planes = [np.repeat(planes[0], 3, axis=2), planes[1]]
    array = _quantize(np.concatenate(planes, axis=2), bit_depth)
    if array.shape[2] == 1:
        array = array[:, :, 0]
    params = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], "jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95],
              "webp": [cv2.IMWRITE_WEBP_QUALITY, 95]}.get(ext, [])
    ok, buffer = cv2.imencode("." + ext, array, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.shape} {array.dtype} image as .{ext}")
    return buffer.tobytes()


def write_image(path: str | os.PathLike, image: ImageData) -> None:
    """Encode ``image`` in the format named by ``path``'s extension and write it atomically."""
    atomic_write_bytes(path, encode_image(image, Path(path).suffix))


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """Tile ``(N, H, W, C)`` images row-major on a black canvas with 2-pixel gaps."""
    import numpy as np

    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    gap = 2
    canvas = np.zeros((rows * (h + gap) + gap, columns * (w + gap) + gap, c), dtype=images.dtype)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (h + gap), gap + (i % columns) * (w + gap)
        canvas[top:top + h, left:left + w] = image
    return canvas

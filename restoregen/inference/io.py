"""Image files for inference: the names of :mod:`restoregen.imageio`, which reads and writes the
images of every command (kept here so that ``restoregen.inference.io`` stays importable)."""

from ..imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageData,
    ImageReadError,
    encode_image,
    fitting_extension,
    read_image,
    unreadable_format,
    write_image,
)

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageData", "ImageReadError", "encode_image",
           "fitting_extension", "read_image", "unreadable_format", "write_image"]

"""PSNR and SSIM as BasicSR (and the papers) compute them: on 8-bit images (H, W, C) in BGR order
with values in [0, 255], optionally on the Y channel of ITU-R BT.601 YCbCr, with ``crop_border``
pixels removed at each edge. SSIM uses an 11x11 Gaussian window (sigma 1.5), valid region only,
and averages over channels."""

from __future__ import annotations

import numpy as np

# BT.601 luma of BGR values in [0, 1], in [16, 235]
_Y_FROM_BGR = np.array([24.966, 128.553, 65.481])
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def _as_hwc(img: np.ndarray, input_order: str) -> np.ndarray:
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    if img.ndim == 2:
        return img[..., None]
    return img.transpose(1, 2, 0) if input_order == "CHW" else img


def y_channel(img: np.ndarray) -> np.ndarray:
    """The Y channel (H, W, 1) in [0, 255] (float, not rounded) of a BGR image in [0, 255]."""
    if img.shape[2] != 3:
        return img.astype(np.float32)
    scaled = img.astype(np.float32) / 255.0
    y = ((scaled @ _Y_FROM_BGR + 16.0) / 255.0).astype(np.float32)  # float64 sum, float32 result
    return (y * np.float32(255.0))[..., None]


def _prepare(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str,
             test_y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} and {img2.shape}")
    img, img2 = _as_hwc(img, input_order), _as_hwc(img2, input_order)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img, img2 = y_channel(img), y_channel(img2)
    return img.astype(np.float64), img2.astype(np.float64)


def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = "HWC",
                   test_y_channel: bool = False, **_: object) -> float:
    """PSNR in dB of two images in [0, 255]; ``inf`` for identical images."""
    a, b = _prepare(img, img2, crop_border, input_order, test_y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 * 255.0 / mse))


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    gauss = cv2.getGaussianKernel(11, 1.5)
    window = gauss @ gauss.T

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2))
    return float(ssim_map.mean())


def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = "HWC",
                   test_y_channel: bool = False, **_: object) -> float:
    """SSIM of two images in [0, 255] (mean over channels)."""
    a, b = _prepare(img, img2, crop_border, input_order, test_y_channel)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))

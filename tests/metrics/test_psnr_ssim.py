"""PSNR/SSIM equal basicsr.metrics on real photos (RGB and Y channel, with and without border)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from restoregen._compat import import_basicsr
from restoregen.metrics import calculate_metric, calculate_psnr, calculate_ssim


def degraded_pairs():
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        image = getattr(skimage.data, name)()
        image = np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image
        small = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA)
        yield name, image, cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("name, image, restored", list(degraded_pairs()), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("crop_border", [0, 4])
@pytest.mark.parametrize("test_y_channel", [False, True])
def test_equal_to_basicsr(name, image, restored, crop_border, test_y_channel):
    reference = import_basicsr("metrics")
    kwargs = {"crop_border": crop_border, "test_y_channel": test_y_channel}
    psnr = calculate_psnr(restored, image, **kwargs)
    ssim = calculate_ssim(restored, image, **kwargs)
    assert abs(psnr - reference.calculate_psnr(restored, image, **kwargs)) <= 1e-6
    assert abs(ssim - reference.calculate_ssim(restored, image, **kwargs)) <= 1e-6
    assert 15 < psnr < 40 and 0.3 < ssim < 1


def test_metric_sections_and_chw_order():
    _, image, restored = next(degraded_pairs())
    section = {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True, "better": "higher"}
    by_section = calculate_metric({"img": restored, "img2": image}, section)
    chw = calculate_psnr(restored.transpose(2, 0, 1), image.transpose(2, 0, 1), 4, input_order="CHW",
                         test_y_channel=True)
    assert by_section == chw == calculate_psnr(restored, image, 4, test_y_channel=True)
    assert calculate_psnr(image, image, 0) == float("inf")


def test_lpips_is_loaded_only_when_used():
    code = "import restoregen.metrics, restoregen.metrics.lpips, sys; print('lpips' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_lpips_without_backbone_weights_says_so_and_downloads_nothing(tmp_path, monkeypatch):
    import torch

    from restoregen.metrics import lpips

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    lpips._model.cache_clear()
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(RuntimeError, match="alexnet-owt-7be5be79.pth; restoregen downloads nothing"):
        calculate_metric({"img": image, "img2": image}, {"type": "calculate_lpips", "crop_border": 0})
    assert not list(tmp_path.rglob("*.pth"))

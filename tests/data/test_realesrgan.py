"""Real-ESRGAN degradations: kernels per item, an LQ batch of the right size on the device, the
training-pair pool."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from restoregen.data.loader import seeded_rngs
from restoregen.data.realesrgan import PairPool, SecondOrderDegradation

OPTIONS = {
    "scale": 4, "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30], "poisson_scale_range": [0.05, 3], "gray_noise_prob": 0.4, "jpeg_range": [30, 95],
    "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25], "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95],
}
KERNELS = {
    "blur_kernel_size": 21, "kernel_list": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                                            "plateau_aniso"],
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], "sinc_prob": 0.1, "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4], "betap_range": [1, 2], "final_sinc_prob": 0.8,
}
KERNELS.update({f"{k}2": v for k, v in KERNELS.items() if k != "final_sinc_prob"})
KERNELS["blur_sigma2"] = [0.2, 1.5]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    import cv2
    import skimage.data

    from restoregen.data import build_dataset

    folder = tmp_path_factory.mktemp("real")
    cv2.imwrite(str(folder / "coffee.png"), skimage.data.coffee()[..., ::-1])
    return build_dataset({"name": "r", "type": "RealESRGANDataset", "dataroot_gt": str(folder), "phase": "train",
                          "scale": 4, "io_backend": {"type": "disk"}, "gt_size": 64, "use_hflip": True,
                          "use_rot": False, **KERNELS})


def test_items_have_gt_and_normalised_kernels(dataset):
    with seeded_rngs(0):
        item = dataset[0]
    assert item["gt"].shape == (3, 400, 400)
    for key in ("kernel1", "kernel2", "sinc_kernel"):
        assert item[key].shape == (21, 21) and abs(item[key].sum().item() - 1) < 1e-3


def test_degradation_makes_an_8bit_lq_batch(dataset):
    from torch.utils.data import default_collate

    with seeded_rngs(1):
        batch = default_collate([dataset[0], dataset[0]])
    degrade = SecondOrderDegradation(OPTIONS)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    lq = degrade(batch["gt"], batch["kernel1"], batch["kernel2"], batch["sinc_kernel"])
    assert lq.shape == (2, 3, 100, 100) and lq.min() >= 0 and lq.max() <= 1
    assert torch.allclose(lq * 255, (lq * 255).round(), atol=1e-4)
    sharp = degrade.sharpen(batch["gt"])
    assert sharp.shape == batch["gt"].shape and not torch.equal(sharp, batch["gt"])


def test_pair_pool_mixes_batches():
    pool = PairPool(4)
    batches = [(torch.full((2, 1, 1, 1), float(i)), torch.full((2, 1, 2, 2), float(i))) for i in range(4)]
    assert torch.equal(pool(*batches[0])[0], batches[0][0])  # filling: batches pass through
    pool(*batches[1])
    lq, gt = pool(*batches[2])  # full: a random pair of earlier samples comes out, this batch goes in
    assert set(lq.flatten().tolist()) <= {0.0, 1.0} and torch.equal(lq[:, :, :1, :1], gt[:, :, :1, :1])
    with pytest.raises(ValueError, match="not a multiple"):
        PairPool(5)(*batches[0])


def test_clean_prob_gives_the_rounded_matlab_bicubic_downscale(dataset):
    from torch.utils.data import default_collate

    from restoregen._compat import import_basicsr

    with seeded_rngs(2):
        batch = default_collate([dataset[0], dataset[0]])
    kernels = batch["kernel1"], batch["kernel2"], batch["sinc_kernel"]
    np.random.seed(0)
    clean = SecondOrderDegradation({**OPTIONS, "clean_prob": 1.0})(batch["gt"], *kernels)
    imresize = import_basicsr("utils.matlab_functions").imresize
    expected = torch.stack([(imresize(image, 1 / 4) * 255).round().clamp(0, 255) / 255 for image in batch["gt"]])
    torch.testing.assert_close(clean, expected, rtol=0, atol=1e-6)
    np.random.seed(0)
    degraded = SecondOrderDegradation({**OPTIONS, "clean_prob": 0.0})(batch["gt"], *kernels)
    assert degraded.shape == clean.shape and (degraded - clean).abs().mean() > 1e-3
    np.random.seed(0)
    noisy = SecondOrderDegradation({**OPTIONS, "bicubic_degrade_prob": 1.0})(batch["gt"], *kernels)
    assert torch.allclose(noisy * 255, (noisy * 255).round(), atol=1e-4)
    # noise and JPEG on the bicubic LQ: near it (sigma <= 25/255 and JPEG), not equal to it
    assert 1e-3 < (noisy - clean).abs().mean() < 0.1

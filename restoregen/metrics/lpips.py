"""LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package, loaded on first use.

Its backbone weights come from torchvision's cache; restoregen does not download them. Images are
8-bit BGR (H, W, C) like the other metrics; lower is better.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# torchvision's weight files of the LPIPS backbones (looked up in torch hub's cache)
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                  "squeeze": "squeezenet1_1-b8a52dc0.pth"}


@lru_cache(maxsize=3)
def _model(net: str):
    import warnings
    from pathlib import Path

    try:
        import lpips
    except ImportError as error:  # pragma: no cover - lpips is a dependency
        raise RuntimeError("the LPIPS metric needs the 'lpips' package") from error
    import torch

    hub = torch.hub.get_dir()
    backbone = Path(hub) / "checkpoints" / BACKBONE_FILES[net]
    if not backbone.is_file():
        raise RuntimeError(f"LPIPS ({net}) needs torchvision's backbone weights at {backbone}; restoregen downloads "
                           "nothing")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lpips.LPIPS(net=net, verbose=False).eval()
    except Exception as error:  # noqa: BLE001 - a missing backbone shows up as a download error
        raise RuntimeError(f"LPIPS ({net}) could not load its backbone weights; put torchvision's {net} weights "
                           f"in {hub}/checkpoints (restoregen downloads nothing): {error}") from None


def calculate_lpips(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, net: str = "alex", **_: object) -> float:
    import torch

    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} and {img2.shape}")
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]

    def to_tensor(x: np.ndarray) -> torch.Tensor:  # BGR [0, 255] -> RGB [-1, 1]
        rgb = np.ascontiguousarray(x[..., ::-1].transpose(2, 0, 1)).astype(np.float32)
        return torch.from_numpy(rgb)[None] / 127.5 - 1.0

    with torch.no_grad():
        return float(_model(net)(to_tensor(img), to_tensor(img2)).item())

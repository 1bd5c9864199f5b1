"""Evaluate the bundled default model at x4 on photos it never saw in training.

For each photo: the GT cropped to a multiple of 4, its MATLAB-bicubic x1/4 downscale as input,
Y-channel PSNR with a 4-pixel border (BasicSR's protocol) for the model and for bicubic
upscaling, and the model's time per output megapixel on this CPU.

Photos: scikit-image's astronaut, chelsea and rocket (always available), plus the held-out photos
that ``scripts/prepare_default_data.py`` writes to ``datasets/default_sr/test`` when present.

    python scripts/eval_default.py [--weights weights/restoregen_default_x4.safetensors] [--images DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SKIMAGE_HELD_OUT = ("astronaut", "chelsea", "rocket")  # never used for training or validation


def photos(folder: Path) -> dict[str, np.ndarray]:
    """Held-out photos as float32 BGR in [0, 1]."""
    import cv2
    import skimage.data

    found = {f"skimage_{n}": np.ascontiguousarray(getattr(skimage.data, n)()[..., ::-1]) for n in SKIMAGE_HELD_OUT}
    if folder.is_dir():
        for path in sorted(folder.glob("*.png")):
            found.setdefault(path.stem, cv2.imread(str(path), cv2.IMREAD_COLOR))
    return {name: image.astype(np.float32) / 255.0 for name, image in found.items()}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255.0).round().astype(np.uint8)


def main() -> int:
    import torch

    from restoregen._compat import import_basicsr
    from restoregen.metrics import calculate_psnr
    from restoregen.train.export import load_exported

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=REPO / "weights" / "restoregen_default_x4.safetensors")
    parser.add_argument("--images", type=Path, default=Path("datasets/default_sr/test"))
    args = parser.parse_args()
    net, meta = load_exported(args.weights)
    scale = int(meta["scale"])
    imresize = import_basicsr("utils.matlab_functions").imresize
    print(f"{args.weights.name}: {meta['arch']} x{scale}, {sum(p.numel() for p in net.parameters()):,} parameters, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'photo':<28}{'size':>11}{'bicubic dB':>12}{'model dB':>10}{'gain dB':>9}{'s/MP':>8}")
    gains, seconds, megapixels = [], 0.0, 0.0
    for name, gt in photos(args.images).items():
        gt = gt[: gt.shape[0] // scale * scale, : gt.shape[1] // scale * scale]
        lq = imresize(gt, 1 / scale)
        bicubic = imresize(lq, scale)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(lq[..., ::-1].transpose(2, 0, 1)))[None]
            start = time.perf_counter()
            out = net(x)
            elapsed = time.perf_counter() - start
        sr = out[0].numpy().transpose(1, 2, 0)[..., ::-1]
        psnr_bic = calculate_psnr(to_uint8(bicubic), to_uint8(gt), scale, test_y_channel=True)
        psnr_sr = calculate_psnr(to_uint8(sr), to_uint8(gt), scale, test_y_channel=True)
        mp = gt.shape[0] * gt.shape[1] / 1e6
        gains.append(psnr_sr - psnr_bic)
        seconds, megapixels = seconds + elapsed, megapixels + mp
        print(f"{name:<28}{gt.shape[1]:>5}x{gt.shape[0]:<5}{psnr_bic:>12.2f}{psnr_sr:>10.2f}{gains[-1]:>+9.2f}"
              f"{elapsed / mp:>8.2f}")
    print(f"mean Y-PSNR gain over bicubic (crop {scale}): {np.mean(gains):+.2f} dB on {len(gains)} photos; "
          f"{seconds / megapixels:.2f} s per output megapixel")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

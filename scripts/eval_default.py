"""Measure the bundled models on the held-out photos, against MATLAB bicubic and OpenCV Lanczos.

For each photo of ``--images`` (``scripts/prepare_default_data.py`` writes the held-out photos to
``datasets/default_sr/test``; without it, scikit-image's astronaut, chelsea and rocket): the photo
cropped to a multiple of the scale is the ground truth; its MATLAB-bicubic downscale, rounded to
8 bits, is the input (case ``clean``). For x4 models a second case, ``noisy-jpeg``, adds Gaussian
noise of sigma 5/255 (seeded) to that input, rounds it, and JPEG-compresses it at quality 60
(OpenCV). Scores: Y-channel PSNR with a border of ``scale`` pixels (BasicSR's protocol) for the
model, for MATLAB bicubic and for OpenCV Lanczos upscaling of the same input; the model's time per
output megapixel (whole-image forwards, ``--threads`` torch threads).

    python scripts/eval_default.py                          # every bundled model in this installation
    python scripts/eval_default.py --models restoregen-x2 --images datasets/default_sr/test
    python scripts/eval_default.py --weights my_x4.safetensors   # any self-describing restoregen file
    python scripts/eval_default.py --write                  # also weights/bundled_results.json (restoregen models)
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SKIMAGE_HELD_OUT = ("astronaut", "chelsea", "rocket")  # held out by scripts/prepare_default_data.py
NOISE_SIGMA = 5 / 255
JPEG_QUALITY = 60


def photos(folder: Path) -> dict[str, np.ndarray]:
    """Held-out photos as 8-bit BGR."""
    import cv2
    import skimage.data

    if folder.is_dir() and any(folder.glob("*.png")):
        return {path.stem: cv2.imread(str(path), cv2.IMREAD_COLOR) for path in sorted(folder.glob("*.png"))}
    return {f"skimage_{n}": np.ascontiguousarray(getattr(skimage.data, n)()[..., ::-1]) for n in SKIMAGE_HELD_OUT}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255.0).round().astype(np.uint8)


def degrade(lq: np.ndarray, seed: int) -> np.ndarray:
    """Gaussian noise of sigma 5/255, 8-bit rounding, JPEG at quality 60: float32 BGR in [0, 1]."""
    import cv2

    noisy = to_uint8(lq + np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, lq.shape))
    ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR).astype(np.float32) / 255.0


def inputs(gt8: np.ndarray, scale: int, case: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, input) as float32 BGR in [0, 1]."""
    from restoregen._compat import import_basicsr

    imresize = import_basicsr("utils.matlab_functions").imresize
    gt = gt8[: gt8.shape[0] // scale * scale, : gt8.shape[1] // scale * scale].astype(np.float32) / 255.0
    lq = to_uint8(imresize(gt, 1 / scale)).astype(np.float32) / 255.0
    return gt, (degrade(lq, seed) if case == "noisy-jpeg" else lq)


def evaluate(net, scale: int, images: dict[str, np.ndarray], case: str, verbose: bool = True) -> dict:
    import cv2
    import torch

    from restoregen._compat import import_basicsr
    from restoregen.metrics import calculate_psnr

    imresize = import_basicsr("utils.matlab_functions").imresize
    rows, seconds, megapixels = [], 0.0, 0.0
    for seed, (name, gt8) in enumerate(images.items()):
        gt, lq = inputs(gt8, scale, case, seed)
        bicubic = imresize(lq, scale)
        lanczos = cv2.resize(lq, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LANCZOS4)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(lq[..., ::-1].transpose(2, 0, 1)))[None]
            start = time.perf_counter()
            out = net(x)
            elapsed = time.perf_counter() - start
        sr = out[0].numpy().transpose(1, 2, 0)[..., ::-1]
        target = to_uint8(gt)
        row = {name_: calculate_psnr(to_uint8(image), target, scale, test_y_channel=True)
               for name_, image in (("bicubic", bicubic), ("lanczos", lanczos), ("model", sr))}
        row.update(photo=name, size=f"{gt.shape[1]}x{gt.shape[0]}", gain=row["model"] - row["bicubic"])
        rows.append(row)
        seconds, megapixels = seconds + elapsed, megapixels + gt.shape[0] * gt.shape[1] / 1e6
        if verbose:
            print(f"  {name:<28}{row['size']:>11}{row['bicubic']:>9.2f}{row['lanczos']:>9.2f}{row['model']:>9.2f}"
                  f"{row['gain']:>+8.2f}{elapsed / (gt.shape[0] * gt.shape[1] / 1e6):>7.2f}", flush=True)
    return {
        "photos": len(rows),
        "bicubic": float(np.mean([r["bicubic"] for r in rows])),
        "model": float(np.mean([r["model"] for r in rows])),
        "gain": float(np.mean([r["gain"] for r in rows])),
        "lanczos_gain": float(np.mean([r["lanczos"] - r["bicubic"] for r in rows])),
        "seconds_per_megapixel": seconds / megapixels,
        "per_photo": rows,
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from restoregen.inference.bundled import BUNDLED, RESULTS_FILE, bundled_path
    from restoregen.train.export import load_exported

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="bundled model names, comma-separated (default: all in this installation)")
    parser.add_argument("--weights", type=Path, action="append", default=[],
                        help="a self-describing restoregen .safetensors file instead (repeatable)")
    parser.add_argument("--images", type=Path, default=Path("datasets/default_sr/test"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--write", action="store_true", help=f"write the results to weights/{RESULTS_FILE}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.weights and args.models is not None:
        parser.error("--models and --weights: give one of them (--weights measures only its files)")
    if args.weights and args.write:
        parser.error(f"--write records the bundled models only; it cannot be combined with --weights "
                     f"(weights/{RESULTS_FILE} would lose their figures)")
    if args.weights:
        models = {path.stem: path for path in args.weights}
    else:
        names = args.models.split(",") if args.models else list(BUNDLED)
        unknown = [n for n in names if n not in BUNDLED]
        if unknown:
            parser.error(f"--models: unknown {', '.join(unknown)} (bundled: {', '.join(BUNDLED)})")
        models = {name: bundled_path(name) for name in names}
        for name in [n for n, p in models.items() if p is None]:
            print(f"{name}: not in this installation, skipped")
            del models[name]
    images = photos(args.images)
    print(f"{len(images)} held-out photos from {args.images if args.images.is_dir() else 'skimage.data'}; "
          f"torch {torch.__version__}, {args.threads} threads")
    results: dict[str, dict] = {}
    for name, path in models.items():
        net, meta = load_exported(path)
        scale = int(meta["scale"])
        parameters = sum(p.numel() for p in net.parameters())
        for case in ("clean", "noisy-jpeg") if scale == 4 else ("clean",):
            print(f"{name} ({meta['arch']} x{scale}, {parameters:,} parameters), input: {case}")
            print(f"  {'photo':<28}{'size':>11}{'bicubic':>9}{'lanczos':>9}{'model':>9}{'gain':>8}{'s/MP':>7}")
            summary = evaluate(net, scale, images, case)
            summary["threads"] = args.threads
            results.setdefault(name, {})[case] = summary
            print(f"  mean Y-PSNR (crop {scale}): bicubic {summary['bicubic']:.2f} dB, model {summary['model']:.2f} dB,"
                  f" gain {summary['gain']:+.2f} dB (Lanczos {summary['lanczos_gain']:+.2f} dB) on "
                  f"{summary['photos']} photos; {summary['seconds_per_megapixel']:.2f} s per output megapixel")
    if {"restoregen-x4", "restoregen-real-x4"} <= set(results):
        for case in ("clean", "noisy-jpeg"):
            difference = results["restoregen-real-x4"][case]["model"] - results["restoregen-x4"][case]["model"]
            print(f"restoregen-real-x4 - restoregen-x4 on {case} inputs: {difference:+.2f} dB")
    print("\n| model | input | photos | bicubic dB | model dB | gain dB | Lanczos gain dB | s/MP |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cases in results.items():
        for case, r in cases.items():
            print(f"| {name} | {case} | {r['photos']} | {r['bicubic']:.2f} | {r['model']:.2f} | {r['gain']:+.2f} | "
                  f"{r['lanczos_gain']:+.2f} | {r['seconds_per_megapixel']:.2f} |")
    if args.write:
        target = REPO / "weights" / RESULTS_FILE
        target.write_text(json.dumps({
            "command": "python scripts/eval_default.py --write",
            "date": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "images": str(args.images),
            "models": results,
        }, indent=1) + "\n", encoding="utf-8")
        print(f"written to {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``restoregen freeswim``: high-resolution video from a local Wan diffusers model with FreeSwim."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..fileio import atomic_folder, atomic_path
from .official import OFFICIAL, OFFLOAD

VIDEO_SUFFIXES = (".mp4",)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="local Wan text-to-video diffusers folder (with model_index.json)")
    parser.add_argument("output", help="output .mp4 file, or a folder for PNG frames")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--negative-prompt", default=None)
    parser.add_argument("--height", type=int, default=OFFICIAL.target_size[0],
                        help="target height (default %(default)s)")
    parser.add_argument("--width", type=int, default=OFFICIAL.target_size[1],
                        help="target width (default %(default)s)")
    parser.add_argument("--train-size", type=int, nargs=2, metavar=("H", "W"), default=OFFICIAL.train_size,
                        help="the model's training size, where the first pass runs (default %(default)s)")
    parser.add_argument("--frames", type=int, default=OFFICIAL.num_frames, help="4k+1 frames (default %(default)s)")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps of each pass (default %(default)s)")
    parser.add_argument("--guidance", type=float, default=OFFICIAL.guidance_scale)
    parser.add_argument("--strength", type=float, default=OFFICIAL.strength,
                        help="video-to-video strength of the second pass (official %(default)s)")
    parser.add_argument("--flow-shift", type=float, default=OFFICIAL.flow_shift,
                        help="scheduler flow shift of the second pass (official %(default)s)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--cache-every", type=int, default=None, metavar="N",
                        help="cache mode: run FreeSwim's full branch every N steps")
    parser.add_argument("--cache-device", default=None, help="where cache mode keeps its tensors, e.g. cpu")
    parser.add_argument("--device", default=None, help="cuda, cpu ... (default: cuda if available)")
    parser.add_argument("--offload", choices=OFFLOAD, default="none", help="CPU offload of the models (CUDA)")
    parser.add_argument("--vae-tiling", action="store_true", help="decode the video in tiles (less memory)")
    parser.add_argument("--fps", type=int, default=16)
    parser.add_argument("--save-base", default=None, metavar="PATH", help="also write the first-pass video")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"restoregen freeswim: {message}", file=sys.stderr)
    return 2


def write_video(frames, path: str | os.PathLike, fps: int) -> None:
    """Write ``(F, H, W, 3)`` float frames in [0, 1] to an .mp4 or a folder of PNGs, atomically."""
    import cv2
    import numpy as np

    from ..imageio import ImageData, write_image

    path = Path(path)
    images = [(np.clip(f, 0, 1) * 255).round().astype(np.uint8) for f in frames]  # RGB
    if path.suffix.lower() in VIDEO_SUFFIXES:
        height, width = images[0].shape[:2]
        with atomic_path(path, keep_suffix=True) as temp:  # OpenCV picks the container from the suffix
            writer = cv2.VideoWriter(str(temp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            try:
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {path.suffix} videos here")
                for image in images:
                    writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
        return
    with atomic_folder(path) as temp:
        for i, image in enumerate(images):
            write_image(temp / f"frame_{i:04d}.png", ImageData.from_uint8(image))


def run(args: argparse.Namespace) -> int:
    model = Path(args.model)
    if not (model / "model_index.json").is_file():
        return _fail(f"{model} is not a diffusers model folder (no model_index.json)")
    sizes = (("--height", args.height), ("--width", args.width), *(("--train-size", s) for s in args.train_size))
    for name, value in sizes:
        if value <= 0 or value % 16:
            return _fail(f"{name} {value} must be a positive multiple of 16")
    if args.frames < 1 or (args.frames - 1) % 4:
        return _fail(f"--frames {args.frames} must be 4k + 1 (1, 5, ..., 81)")
    if not 0 < args.strength <= 1:
        return _fail(f"--strength {args.strength} must be in (0, 1]")
    if args.cache_every is not None and args.cache_every < 1:
        return _fail(f"--cache-every {args.cache_every} must be at least 1")
    output = Path(args.output)
    if output.suffix and output.suffix.lower() not in VIDEO_SUFFIXES:
        return _fail(f"{output}: write an .mp4 file or a folder (no suffix) of PNG frames")

    import torch

    try:
        import transformers  # noqa: F401  (Wan's UMT5 text encoder)
    except ImportError:
        return _fail("loading a Wan model needs transformers: pip install 'restoregen[freeswim]'")
    from .recipe import coarse_to_fine

    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError as error:
        return _fail(f"--device {args.device}: {error}")
    video, base = coarse_to_fine(
        str(model), args.prompt, args.negative_prompt, height=args.height, width=args.width,
        train_size=tuple(args.train_size), num_frames=args.frames, num_inference_steps=args.steps,
        guidance_scale=args.guidance, strength=args.strength, flow_shift=args.flow_shift, seed=args.seed,
        cache_every=args.cache_every, cache_device=args.cache_device, device=device, offload=args.offload,
        vae_tiling=args.vae_tiling, return_base=True)
    write_video(video, output, args.fps)
    if args.save_base:
        write_video(base, args.save_base, args.fps)
    print(f"wrote {output} ({len(video)} frames, {args.width}x{args.height})")
    return 0

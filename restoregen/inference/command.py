"""``restoregen upscale INPUT OUTPUT``: super-resolve an image or a folder with a HAT/DRCT/DLGSANet checkpoint."""

from __future__ import annotations

import argparse
import ast
import sys

from .io import DEFAULT_MAX_PIXELS

EXTENSIONS = ("png", "jpg", "webp", "tif", "bmp")

EPILOG = """\
examples:
  restoregen upscale photos/ photos_x4/ --model HAT-S_SRx4.pth
  restoregen upscale scan.tif scan_x2.tif --model DRCT_SRx2.pth --tile 256 --device cuda:1
  accelerate launch -m restoregen upscale photos/ out/ --model HAT_SRx4.pth --recursive   (one share per GPU)

The architecture (HAT, DRCT or DLGSANet) and its hyper-parameters are read from the weights.
Alpha is upscaled bicubically and written as RGBA PNG; 16-bit and grayscale images stay so; EXIF
orientation is applied. Exit status: 0 if every image was done or skipped, 1 if any failed,
2 for a usage error.
"""


def _tile(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'auto', got {value!r}") from None
    if tile < 0 or 0 < tile < 16:
        raise argparse.ArgumentTypeError(f"tile {tile} is too small (use 0 for no tiling, or at least 16)")
    return tile


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _model_arg(value: str) -> tuple[str, object]:
    key, sep, raw = value.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        parsed = raw  # a bare string such as relu
    return key, parsed


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("input", metavar="INPUT", help="an image file or a folder of images "
                        "(.png .jpg .jpeg .bmp .tif .tiff .webp, any letter case; hidden files are skipped)")
    parser.add_argument("output", metavar="OUTPUT", help="output folder, created if needed; output names mirror "
                        "input names. With a file INPUT, an OUTPUT ending in an image extension is the output file")
    parser.add_argument("--model", metavar="PATH", help="checkpoint: .pth/.pt/.ckpt (read with weights_only=True, "
                        "never fully unpickled) or .safetensors; official HAT, DRCT and DLGSANet weights are "
                        "recognised (see weights/README.md). Default: the bundled x4 model (a small HAT, "
                        "weights/restoregen_default_x4.safetensors)")
    parser.add_argument("--model-arg", metavar="KEY=VALUE", type=_model_arg, action="append", default=[],
                        help="override a constructor argument that the weights cannot reveal, e.g. img_range=255. "
                        "or tlc_kernel=64 (repeatable)")
    parser.add_argument("--tile", type=_tile, default="auto", metavar="N|auto",
                        help="side in pixels of the square tiles the network sees; 'auto' (default) picks it from "
                        "the free memory, 0 processes whole images. Shrinks automatically on out-of-memory")
    parser.add_argument("--tile-overlap", type=_non_negative, default=32, metavar="N",
                        help="input pixels shared by neighbouring tiles, blended smoothly (default: 32)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:i]",
                        help="auto (default): this process's GPU if there is one, else the CPU")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="auto (default): bf16 on GPUs that support it, fp32 otherwise. fp16 overflows in Swin "
                        "attention; if it gives non-finite values the run switches to fp32")
    parser.add_argument("--ext", choices=EXTENSIONS, default="png",
                        help="output format (default: png). Images with alpha (or 16-bit samples) are written as "
                        ".png when the format cannot hold them")
    parser.add_argument("--suffix", default="", help="appended to each output file name stem (default: none)")
    parser.add_argument("--recursive", action="store_true", help="also process sub-folders (mirrored in OUTPUT)")
    parser.add_argument("--overwrite", action="store_true", help="redo images whose output exists (default: skip)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse images declaring more input pixels (decompression-bomb guard; "
                        f"default: {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"restoregen upscale: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import os

    from .loading import CheckpointError, default_model_path, load_model
    from .runner import UsageError, collect_jobs, process_share, run_jobs
    from .tiling import Upscaler, resolve_device

    model_path = args.model or default_model_path()
    if model_path is None:
        return _error("no --model given, and this installation lacks the bundled default model "
                      "(restoregen/weights/restoregen_default_x4.safetensors). Pass --model PATH with an official "
                      "HAT, DRCT or DLGSANet checkpoint (.pth or .safetensors; see weights/README.md)")
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as error:  # torch.device() raises RuntimeError for unknown names
        return _error(f"--device {args.device}: {error}")
    try:
        jobs = process_share(collect_jobs(args.input, args.output, args.ext, args.suffix, args.recursive))
        model, info = load_model(model_path, **dict(args.model_arg))
    except (UsageError, CheckpointError) as error:
        return _error(str(error))
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    tag = f"[{rank}/{world}] " if world > 1 else ""

    def log(message: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"{tag}{message}", file=sys.stderr)

    upscaler = Upscaler(model, info, device=device, precision=args.precision, tile=args.tile,
                        overlap=args.tile_overlap, log=log)
    log(f"{info.describe()} on {device} in {str(upscaler.dtype).removeprefix('torch.')}; {len(jobs)} image(s)")
    try:
        summary = run_jobs(jobs, upscaler, overwrite=args.overwrite, max_pixels=args.max_pixels,
                           progress=not args.quiet, log=log, desc=f"{tag}upscale")
    except KeyboardInterrupt:
        log("interrupted; finished images are kept, no partial files are left")
        return 130
    for line in summary.lines():
        print(f"{tag}{line}")
    return 1 if summary.failed else 0

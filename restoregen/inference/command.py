"""``restoregen upscale INPUT OUTPUT``: super-resolve an image or a folder with a checkpoint of any network
restoregen or spandrel recognises."""

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

The architecture and its hyper-parameters are read from the weights ({own} by
restoregen, everything else spandrel knows by spandrel).
Alpha is upscaled bicubically and written as RGBA PNG; 16-bit and grayscale images stay so; float
TIFFs stay float as .tif (16-bit as .png); EXIF orientation is applied. Before any image is
computed, OUTPUT is created and checked for writing. Results are never read back as inputs.
Exit status: 0 if every image was done or skipped, 1 if any failed, 2 for a usage error.
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


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


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


def _with_own_networks(text: str) -> str:
    """``text`` with ``{own}`` replaced by restoregen's own networks (read from the registry, which
    imports torch: only when help is shown)."""
    if "{own}" not in text:
        return text
    from ..archs import family_names

    return text.replace("{own}", family_names(last=" and "))


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _format_text(self, text: str) -> str:
        return super()._format_text(_with_own_networks(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return _with_own_networks(super()._expand_help(action))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _HelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("input", metavar="INPUT", help="an image file or a folder of images "
                        "(.png .jpg .jpeg .bmp .tif .tiff .webp, any letter case; hidden files are skipped)")
    parser.add_argument("output", metavar="OUTPUT", help="output folder, created if needed; output names mirror "
                        "input names. With a file INPUT, an OUTPUT ending in an image extension is the output file")
    parser.add_argument("--model", metavar="PATH|NAME", help="checkpoint: .pth/.pt/.ckpt (read with weights_only=True, "
                        "never fully unpickled) or .safetensors: {own} run on restoregen's own "
                        "networks, every other architecture spandrel recognises (ESRGAN, Real-ESRGAN, SwinIR, DAT, "
                        "...) through spandrel (`restoregen info --model PATH` says which); or an .onnx file "
                        "(onnxruntime). Or a bundled model's name: restoregen-x2, "
                        "restoregen-x3, restoregen-x4, restoregen-real-x4 (for JPEG-compressed or noisy photos; "
                        "`restoregen models` lists them). Default: the bundled model of --scale")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=None,
                        help="without --model: use the bundled clean-photo model of this scale (default: 4). "
                        "With --model: checked against the model's scale")
    parser.add_argument("--model-arg", metavar="KEY=VALUE", type=_model_arg, action="append", default=[],
                        help="override a constructor argument that the weights cannot reveal, e.g. img_range=255. "
                        "or tlc_kernel=64 (repeatable)")
    parser.add_argument("--tile", type=_tile, default="auto", metavar="N|auto",
                        help="side in pixels of the square tiles the network sees; 'auto' (default) picks it from "
                        "the model and the device's total memory (the same every run; images that fit are not "
                        "tiled), 0 processes whole images. Shrinks automatically on out-of-memory")
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
    parser.add_argument("--threads", type=_positive, default=None, metavar="N",
                        help="torch CPU threads (default: $OMP_NUM_THREADS, else the CPUs this process may use; "
                        "on a busy CPU fewer threads can be much faster)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"restoregen upscale: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import os

    from ..threads import configure_threads
    from .bundled import BundledModelError, resolve_model_argument
    from .loading import CheckpointError, load_model
    from .runner import UsageError, prepare_output, process_share, run_jobs, scan_inputs
    from .tiling import Upscaler, resolve_device

    try:
        model_path = resolve_model_argument(args.model, args.scale)
    except BundledModelError as error:
        return _error(str(error))
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as error:  # torch.device() raises RuntimeError for unknown names
        return _error(f"--device {args.device}: {error}")
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    tag = f"[{rank}/{world}] " if world > 1 else ""

    def log(message: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"{tag}{message}", file=sys.stderr)

    try:  # everything that can go wrong before the first image, checked before the model is loaded
        scan = scan_inputs(args.input, args.output, args.ext, args.suffix, args.recursive)
        jobs = process_share(scan.jobs)
        model, info = load_model(model_path, **dict(args.model_arg))
        if args.scale is not None and info.scale != args.scale:
            raise UsageError(f"--model {args.model} is x{info.scale}, but --scale {args.scale} was asked for")
        removed = prepare_output(scan)
    except (UsageError, CheckpointError) as error:
        return _error(str(error))
    if removed:
        log(f"removed {len(removed)} partial file(s) left by an interrupted run "
            f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})")
    log(configure_threads(args.threads))

    try:
        upscaler = Upscaler(model, info, device=device, precision=args.precision, tile=args.tile,
                            overlap=args.tile_overlap, log=log)
    except ValueError as error:  # a precision the network does not support
        return _error(str(error))
    log(f"{info.describe()} on {device} in {str(upscaler.dtype).removeprefix('torch.')}; {len(jobs)} image(s)")
    try:
        summary = run_jobs(jobs, upscaler, overwrite=args.overwrite, max_pixels=args.max_pixels,
                           progress=not args.quiet, log=log, desc=f"{tag}upscale",
                           ignored=scan.ignored if rank == 0 else [])
    except KeyboardInterrupt:
        log("interrupted; finished images are kept, no partial files are left")
        return 130
    for line in summary.lines():
        print(f"{tag}{line}")
    return 1 if summary.failed else 0

"""``restoregen sample``: images from a StyleSwin generator.

    restoregen sample --model CKPT --n N --seed S [--truncation T] --out DIR

Writes ``000000.png`` ... and ``grid.png`` (the first ``--grid`` images) to DIR. CKPT is one of

- a ``.safetensors`` generator state dict (optional metadata ``kwargs``: the constructor
  arguments as JSON);
- a ``.pth``/``.pt`` dict with the generator under ``params_ema``, ``g_ema``, ``params`` or ``g``
  (first found, see :func:`restoregen.checkpoints.unwrap_state_dict`), e.g. an official StyleSwin
  checkpoint (``g``/``d``/``g_ema``/``args``), read without running pickle code
  (:mod:`restoregen.checkpoints`).

The architecture is recovered from the tensor shapes; ``lr_mlp`` (not visible in shapes) comes
from the official ``args``, the metadata, or ``--lr-mlp`` (default 0.01, the official value).
Sample i uses the i-th row of ``torch.randn(N, style_dim)`` drawn on the CPU from ``--seed``, so
images do not depend on the batch size or device.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, metavar="CKPT",
                        help="generator checkpoint: .safetensors, or .pth/.pt (ours or official StyleSwin)")
    parser.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent codes (default 0)")
    parser.add_argument("--truncation", type=float, default=1.0,
                        help="truncation psi: 1 = none, <1 pulls towards the average face (default 1)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--grid", type=int, default=64, help="images in grid.png, the first ones (default 64)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--lr-mlp", type=float, default=None,
                        help="mapping-network lr multiplier when the checkpoint does not record it (default 0.01)")
    parser.set_defaults(func=run)


class UserError(Exception):
    """A problem with the command line or the input files; reported without a traceback."""


def _generator_state(data: Any, path: Path) -> tuple[dict, Mapping, list[str]]:
    """(state dict, recorded kwargs / args, notes) of the generator in a loaded checkpoint."""
    from ..checkpoints import CheckpointError, NamespaceRecord, key_variants, unwrap_state_dict

    try:
        state, entry = unwrap_state_dict(data)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: no generator weights: {error}") from None
    if entry is None:
        return key_variants(state)[-1], {}, []
    recorded: Mapping = {}
    notes = [f"using entry '{entry}'"]
    args = data.get("args")
    if isinstance(args, NamespaceRecord):
        recorded = args.as_dict()
        notes.append("read the official 'args' as plain fields")
    elif isinstance(data.get("network_g"), Mapping):
        recorded = data["network_g"]
    top = entry.split("/")[0]
    unused = [str(k) for k in data if k not in (top, "args", "network_g")]
    if unused:
        notes.append(f"not needed for sampling: {', '.join(unused)}")
    return key_variants(state)[-1], recorded, notes


def load_generator(path: str | Path, lr_mlp: float | None = None):
    """A :class:`~restoregen.archs.styleswin.StyleSwinGenerator` with the weights of ``path``
    (see the module docstring), in eval mode on the CPU, and notes on what was read or skipped.
    Raises :class:`~restoregen.checkpoints.CheckpointError` for unusable files."""
    from ..archs import UnknownArchitecture, build, detect
    from ..checkpoints import CheckpointError, metadata_json, read_checkpoint

    path = Path(path)
    checkpoint = read_checkpoint(path)
    state, recorded, notes = _generator_state(checkpoint.data, path)
    if checkpoint.skipped:
        notes.append(f"skipped (not executed, not loaded): {', '.join(checkpoint.skipped)}")
    try:
        arch, kwargs = detect(state)
    except UnknownArchitecture as error:
        raise CheckpointError(f"{path}: not a StyleSwin generator state dict ({error})") from None
    if arch != "StyleSwinGenerator":
        raise CheckpointError(f"{path}: not a StyleSwin generator state dict: the weights are a {arch}")
    recorded = {**recorded, **(metadata_json(checkpoint, "kwargs") or {})}
    if "size" in recorded and int(recorded["size"]) != kwargs["size"]:
        notes.append(f"recorded size {recorded['size']} disagrees with the weights; using {kwargs['size']}")
    for key in ("lr_mlp", "qk_scale"):
        if key in recorded:
            kwargs[key] = recorded[key]
    if lr_mlp is not None:
        kwargs["lr_mlp"] = lr_mlp
    generator = build("StyleSwinGenerator", **kwargs)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the StyleSwin generator {kwargs}: {error}") from None
    notes.append(f"generator: {kwargs}")
    return generator.eval(), notes


def sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..archs.styleswin import to_unit_range
    from ..imageio import ImageData, image_grid, write_image

    if args.n < 1 or args.batch_size < 1 or args.grid < 0:
        raise UserError("--n and --batch-size must be at least 1, --grid at least 0")
    if not math.isfinite(args.truncation) or args.truncation < 0:
        raise UserError(f"--truncation must be a finite number >= 0, got {args.truncation}")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as error:
        raise UserError(f"--device {args.device}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    generator, notes = load_generator(args.model, args.lr_mlp)
    for note in notes:
        print(f"restoregen sample: {note}", file=sys.stderr)
    generator.to(device)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {args.out}: cannot create the folder ({error.strerror})") from None

    z = torch.randn(args.n, generator.style_dim, generator=torch.Generator().manual_seed(args.seed))
    truncation_latent = generator.mean_latent() if args.truncation != 1 else None
    kept = []
    with torch.inference_mode(), tqdm(total=args.n, unit="img", desc="sample") as progress:
        for start in range(0, args.n, args.batch_size):
            batch = z[start:start + args.batch_size].to(device)
            images, _ = generator(batch, truncation=args.truncation, truncation_latent=truncation_latent)
            pixels = (to_unit_range(images.float()) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for offset, image in enumerate(pixels):
                write_image(args.out / f"{start + offset:06d}.png", ImageData.from_uint8(image))
            kept.extend(pixels[: max(0, args.grid - len(kept))])
            progress.update(len(batch))
    if kept:
        grid = image_grid(np.stack(kept), math.ceil(math.sqrt(len(kept))))
        write_image(args.out / "grid.png", ImageData.from_uint8(grid))
    print(f"restoregen sample: wrote {args.n} images{' and grid.png' if kept else ''} to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError

    try:
        return sample(args)
    except (UserError, CheckpointError) as error:
        print(f"restoregen sample: error: {error}", file=sys.stderr)
        return 2

"""``restoregen sample``: images from a StyleSwin generator.

    restoregen sample --model CKPT --n N --seed S [--truncation T] --out DIR

Writes ``000000.png`` ... and ``grid.png`` (the first ``--grid`` images) to DIR. CKPT is one of

- a ``.safetensors`` generator state dict (optional metadata ``kwargs``: the constructor
  arguments as JSON);
- a ``.pth``/``.pt`` dict with the generator under ``params_ema``, ``g_ema``, ``params`` or ``g``
  (first found), e.g. an official StyleSwin checkpoint (``g``/``d``/``g_ema``/``args``), read
  without running pickle code (:mod:`restoregen.checkpoints`).

The architecture is recovered from the tensor shapes; ``lr_mlp`` (not visible in shapes) comes
from the official ``args``, the metadata, or ``--lr-mlp`` (default 0.01, the official value).
Sample i uses the i-th row of ``torch.randn(N, style_dim)`` drawn on the CPU from ``--seed``, so
images do not depend on the batch size or device.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_GENERATOR_ENTRIES = ("params_ema", "g_ema", "params", "g")


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


def _generator_state(data: Any, path: Path) -> tuple[Mapping, Mapping, list[str]]:
    """(state dict, recorded kwargs / args, notes) of the generator in a loaded checkpoint."""
    from ..checkpoints import CheckpointError, NamespaceRecord, SkippedObject

    if not isinstance(data, Mapping):
        what = repr(data) if isinstance(data, SkippedObject) else f"a {type(data).__name__}"
        raise CheckpointError(f"{path}: holds {what}, not a dict of weights")
    if data and all(hasattr(v, "shape") for v in data.values()):
        return data, {}, []
    entry = next((k for k in _GENERATOR_ENTRIES if isinstance(data.get(k), Mapping)), None)
    if entry is None:
        raise CheckpointError(f"{path}: no generator weights: expected a state dict or one of the entries "
                        f"{', '.join(_GENERATOR_ENTRIES)}; found {', '.join(map(str, data)) or 'nothing'}")
    recorded: Mapping = {}
    notes = [f"using entry '{entry}'"]
    args = data.get("args")
    if isinstance(args, NamespaceRecord):
        recorded = args.as_dict()
        notes.append("read the official 'args' as plain fields")
    elif isinstance(data.get("network_g"), Mapping):
        recorded = data["network_g"]
    unused = [str(k) for k in data if k not in (entry, "args", "network_g")]
    if unused:
        notes.append(f"not needed for sampling: {', '.join(unused)}")
    return data[entry], recorded, notes


def load_generator(path: str | Path, lr_mlp: float | None = None):
    """A :class:`~restoregen.archs.styleswin.StyleSwinGenerator` with the weights of ``path``
    (see the module docstring), in eval mode on the CPU, and notes on what was read or skipped.
    Raises :class:`~restoregen.checkpoints.CheckpointError` for unusable files."""
    import torch

    from ..archs.styleswin import StyleSwinGenerator, infer_generator_kwargs
    from ..checkpoints import CheckpointError, metadata_json, read_checkpoint

    path = Path(path)
    checkpoint = read_checkpoint(path)
    state, recorded, notes = _generator_state(checkpoint.data, path)
    if checkpoint.skipped:
        notes.append(f"skipped (not executed, not loaded): {', '.join(checkpoint.skipped)}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: the generator weights hold non-tensor values at {', '.join(map(str, bad[:5]))}")
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        kwargs = infer_generator_kwargs(state)
    except KeyError as error:
        raise CheckpointError(f"{path}: {error.args[0]}") from None
    recorded = {**recorded, **(metadata_json(checkpoint, "kwargs") or {})}
    if "size" in recorded and int(recorded["size"]) != kwargs["size"]:
        notes.append(f"recorded size {recorded['size']} disagrees with the weights; using {kwargs['size']}")
    for key in ("lr_mlp", "qk_scale"):
        if key in recorded:
            kwargs[key] = recorded[key]
    if lr_mlp is not None:
        kwargs["lr_mlp"] = lr_mlp
    generator = StyleSwinGenerator(**kwargs)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the StyleSwin generator {kwargs}: {error}") from None
    notes.append(f"generator: {kwargs}")
    return generator.eval(), notes


def save_png(array, path: Path) -> None:
    """Write an ``(H, W, 3)`` uint8 array atomically (temporary file, then rename)."""
    from PIL import Image

    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        Image.fromarray(array).save(temporary, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def image_grid(images, columns: int):
    """Tile ``(N, H, W, 3)`` uint8 images row-major on a black canvas with 2-pixel gaps."""
    import numpy as np

    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    gap = 2
    canvas = np.zeros((rows * (h + gap) + gap, columns * (w + gap) + gap, c), dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (h + gap), gap + (i % columns) * (w + gap)
        canvas[top:top + h, left:left + w] = image
    return canvas


def sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..archs.styleswin import to_unit_range

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
                save_png(image, args.out / f"{start + offset:06d}.png")
            kept.extend(pixels[: max(0, args.grid - len(kept))])
            progress.update(len(batch))
    if kept:
        save_png(image_grid(np.stack(kept), math.ceil(math.sqrt(len(kept)))), args.out / "grid.png")
    print(f"restoregen sample: wrote {args.n} images{' and grid.png' if kept else ''} to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError

    try:
        return sample(args)
    except (UserError, CheckpointError) as error:
        print(f"restoregen sample: error: {error}", file=sys.stderr)
        return 2

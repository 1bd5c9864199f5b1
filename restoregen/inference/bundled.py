"""The models that ship with restoregen, by name (``--model restoregen-x2``), and ``restoregen models``.

The weights lie in ``restoregen/weights/`` (a link to the repository's ``weights/`` folder); each
file is self-describing (safetensors metadata: ``arch``, ``kwargs``, ``scale``). The measured
results that ``restoregen models`` prints come from ``weights/bundled_results.json``, which
``scripts/eval_default.py --write`` writes: nothing there is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED", "DEFAULT_FOR_SCALE", "BundledModel", "BundledModelError", "bundled_path", "configure",
           "resolve_model_argument", "results"]

RESULTS_FILE = "bundled_results.json"


@dataclass(frozen=True)
class BundledModel:
    name: str
    file: str  # in restoregen/weights/
    scale: int
    purpose: str  # when to pick it
    data: str  # what it was trained on


CORPUS = "the photo corpus of scripts/prepare_default_data.py (skimage.data + Debian wallpapers and stamps)"
BUNDLED: dict[str, BundledModel] = {model.name: model for model in (
    BundledModel("restoregen-x2", "restoregen_x2.safetensors", 2, "clean photos, x2", f"{CORPUS}, MATLAB-bicubic LR"),
    BundledModel("restoregen-x3", "restoregen_x3.safetensors", 3, "clean photos, x3", f"{CORPUS}, MATLAB-bicubic LR"),
    BundledModel("restoregen-x4", "restoregen_default_x4.safetensors", 4, "clean photos, x4 (the default)",
                 "42 photos of skimage.data and Debian wallpapers (weights/README.md, stages 1-3), then, grown "
                 f"by a residual group, {CORPUS}; MATLAB-bicubic LR"),
    BundledModel("restoregen-real-x4", "restoregen_real_x4.safetensors", 4,
                 "JPEG-compressed or noisy photos (downloads, phone pictures), x4",
                 f"{CORPUS}, MATLAB-bicubic LR: 30 % as it is, 40 % with noise and JPEG, 30 % with "
                 "Real-ESRGAN-style degradations (blur, resize, noise, JPEG, twice)"),
)}
DEFAULT_FOR_SCALE = {2: "restoregen-x2", 3: "restoregen-x3", 4: "restoregen-x4"}
DEFAULT_SCALE = 4


class BundledModelError(ValueError):
    """An unknown or missing bundled model, or a scale no bundled model has (one-line message)."""


def _weights_folder() -> Path:
    return Path(str(resources.files("restoregen") / "weights"))


def bundled_path(name: str) -> Path | None:
    """The file of bundled model ``name``, or None if this installation lacks it."""
    path = _weights_folder() / BUNDLED[name].file
    return path if path.is_file() else None


def _names() -> str:
    return ", ".join(BUNDLED)


def resolve_model_argument(model: str | None, scale: int | None) -> str | Path:
    """What ``--model`` / ``--scale`` name: a file path as given, or the file of a bundled model.

    No ``--model``: the bundled model of ``scale`` (x4 by default). A name starting with
    ``restoregen-`` that is not a file is a bundled model's name.
    """
    if model is not None and (Path(model).exists() or not model.startswith("restoregen-")):
        return model
    if model is None:
        wanted = DEFAULT_SCALE if scale is None else scale
        if wanted not in DEFAULT_FOR_SCALE:
            raise BundledModelError(f"--scale {wanted}: no bundled model for x{wanted} (bundled: "
                                    f"{', '.join(f'x{s}' for s in DEFAULT_FOR_SCALE)}); pass --model with a "
                                    f"checkpoint of that scale")
        model = DEFAULT_FOR_SCALE[wanted]
    if model not in BUNDLED:
        raise BundledModelError(f"--model {model}: no such file, and no bundled model of that name "
                                f"(bundled: {_names()})")
    entry = BUNDLED[model]
    if scale is not None and scale != entry.scale:
        raise BundledModelError(f"--model {model} is x{entry.scale}, but --scale {scale} was asked for")
    path = bundled_path(model)
    if path is None:
        from ..archs import family_names

        raise BundledModelError(f"--model {model}: this installation lacks its weights "
                                f"(restoregen/weights/{entry.file}); pass --model PATH with a checkpoint "
                                f"(official {family_names()}, or any architecture spandrel knows)")
    return path


def results() -> dict:
    """The measurements of ``scripts/eval_default.py --write`` (empty if there are none)."""
    path = _weights_folder() / RESULTS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _describe(name: str, measured: dict) -> list[str]:
    entry = BUNDLED[name]
    path = bundled_path(name)
    if path is None:
        return [f"{name}  x{entry.scale}  (not in this installation: restoregen/weights/{entry.file})"]
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        parameters = sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys()  # noqa: SIM118 (safe_open is not iterable)
                         if "index" not in key and "mask" not in key)  # buffers the network computes
    kwargs = json.loads(meta.get("kwargs", "{}"))
    shape = f"embed {kwargs['embed_dim']}, depths {kwargs['depths']}" if "embed_dim" in kwargs else ""
    lines = [f"{name}  x{entry.scale}  {meta.get('arch', '?')} ({shape}), {parameters:,} parameters, "
             f"{path.stat().st_size / 2**20:.1f} MiB",
             f"    for:  {entry.purpose}",
             f"    data: {entry.data}"]
    for case, row in sorted(measured.get(name, {}).items()):
        lines.append(f"    measured ({case}): {row['gain']:+.2f} dB Y-PSNR over MATLAB bicubic on {row['photos']} "
                     f"held-out photos (OpenCV Lanczos {row['lanczos_gain']:+.2f} dB), "
                     f"{row['seconds_per_megapixel']:.2f} s per output megapixel at {row['threads']} threads")
    return lines


def run(args: argparse.Namespace) -> int:
    measured = results()
    for name in BUNDLED:
        print("\n".join(_describe(name, measured.get("models", {}))))
    if measured:
        print(f"\nmeasured by: {measured.get('command', 'python scripts/eval_default.py --write')} "
              f"({measured.get('date', '?')}, torch {measured.get('torch', '?')})")
    else:
        print("\nno measurements in this installation (python scripts/eval_default.py --write)", file=sys.stderr)
    print("use: restoregen upscale IN OUT --model NAME, or --scale 2|3|4 for the clean-photo model of that scale")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=run)

"""The folder runner behind ``restoregen upscale``: find the images, upscale each, write, report.

Output names mirror input names (``OUTPUT/<relative folder>/<stem><suffix>.<ext>``). Existing
outputs are skipped, bad files are reported with the reason and the run carries on; the summary
lists every failure. Under ``accelerate launch`` (or ``torchrun``) each process takes every
``WORLD_SIZE``-th file, starting at its ``RANK``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageData, ImageReadError, fitting_extension, read_image, write_image
from .tiling import Upscaler

__all__ = ["Job", "Summary", "UsageError", "collect_jobs", "existing_output", "process_share", "run_jobs",
           "upscale_image"]


class UsageError(ValueError):
    """INPUT/OUTPUT that cannot work together (reported without a traceback)."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path  # with the requested extension; alpha/16-bit images may be written as .png instead
    name: str  # the source relative to INPUT, for messages
    problem: str | None = None  # known before running (e.g. two inputs that map to one output)


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = f", {self.done / self.seconds:.2f} images/s" if self.done and self.seconds > 0 else ""
        lines = [f"done {self.done}, skipped {self.skipped} (already there), failed {len(self.failed)}"
                 f" in {self.seconds:.1f} s{rate}"]
        lines += [f"  failed: {name}: {reason}" for name, reason in self.failed]
        return lines


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _output_name(relative: Path, suffix: str, ext: str) -> Path:
    return relative.with_name(f"{relative.stem}{suffix}.{ext}")


def collect_jobs(input_path: str | os.PathLike, output_path: str | os.PathLike, ext: str = "png", suffix: str = "",
                 recursive: bool = False) -> list[Job]:
    """The images under ``input_path`` (a file or a folder) and where each one's result goes.

    Hidden files and folders are skipped, and so is ``output_path`` when it lies inside the input.
    With a file as input, ``output_path`` is the output file if it has an image extension.
    """
    source, output = Path(input_path), Path(output_path)
    ext = ext.lower().lstrip(".")
    if source.is_file():
        if output.suffix.lower() in IMAGE_EXTENSIONS:
            jobs = [Job(source, output, source.name)]
        else:
            jobs = [Job(source, output / _output_name(Path(source.name), suffix, ext), source.name)]
    elif source.is_dir():
        files: list[Path] = []
        skip = output.resolve()
        for folder, dirs, names in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(folder, d).resolve() != skip)
            files += [Path(folder, n) for n in sorted(names) if _is_image_name(Path(n))]
            if not recursive:
                break
        jobs = [Job(f, output / _output_name(f.relative_to(source), suffix, ext), f.relative_to(source).as_posix())
                for f in files]
    else:
        raise UsageError(f"{source}: no such file or folder")
    claimed: dict[Path, str] = {}
    checked = []
    for job in jobs:
        key = job.target.resolve()
        if key == job.source.resolve():
            raise UsageError(f"{job.name}: the output would overwrite the input; choose another OUTPUT or a --suffix")
        other = claimed.setdefault(key, job.name)
        problem = None if other == job.name else f"same output file as {other} ({job.target.name}); rename one"
        checked.append(Job(job.source, job.target, job.name, problem))
    return checked


def process_share(jobs: list[Job], rank: int | None = None, world: int | None = None) -> list[Job]:
    """This process's share of ``jobs``: every ``world``-th from ``rank`` (defaults: ``RANK``, ``WORLD_SIZE``)."""
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", 1)) if world is None else world
    return jobs[rank::world] if world > 1 else jobs


def existing_output(job: Job) -> Path | None:
    """An output already written for ``job`` (under the requested extension or the .png fallback)."""
    for candidate in (job.target, job.target.with_suffix(".png")):
        if candidate.is_file():
            return candidate
    return None


def _resize_alpha(alpha, height: int, width: int):
    import cv2
    import numpy as np

    if alpha.min() == alpha.max():  # constant (e.g. fully opaque): nothing to interpolate
        return np.full((height, width), alpha.flat[0], dtype=np.float32)
    return np.clip(cv2.resize(alpha, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def upscale_image(upscaler: Upscaler, image: ImageData) -> ImageData:
    """Colour through the network; alpha upscaled bicubically; gray stays gray; bit depth kept."""
    pixels = torch.from_numpy(image.pixels).permute(2, 0, 1)[None]  # (1, C, H, W)
    channels = upscaler.info.in_channels
    if pixels.shape[1] == channels:
        out = upscaler(pixels)
    elif channels == 3 and pixels.shape[1] == 1:  # gray through an RGB network: equal channels in, mean out
        out = upscaler(pixels.expand(1, 3, -1, -1)).mean(dim=1, keepdim=True)
    elif channels == 1:  # colour through a one-channel network: channel by channel
        out = torch.cat([upscaler(pixels[:, i:i + 1]) for i in range(pixels.shape[1])], dim=1)
    else:
        raise ValueError(f"cannot feed a {pixels.shape[1]}-channel image to a {channels}-channel network")
    height, width = out.shape[-2:]
    alpha = None if image.alpha is None else _resize_alpha(image.alpha, height, width)
    return ImageData(out[0].permute(1, 2, 0).contiguous().numpy(), alpha, image.bit_depth)


def _attempt(job: Job, upscaler: Upscaler, max_pixels: int) -> str | None:
    """Read, upscale and write one image: None when done, else why it failed."""
    try:
        image = read_image(job.source, max_pixels)
        result = upscale_image(upscaler, image)
        write_image(job.target.with_suffix("." + fitting_extension(job.target.suffix, image)), result)
    except ImageReadError as error:
        return str(error)
    except Exception as error:  # one bad file must not stop the run
        return f"{type(error).__name__}: {error}"
    return None


def run_jobs(jobs: list[Job], upscaler: Upscaler, overwrite: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
             progress: bool = True, log: Callable[[str], None] | None = None, desc: str = "upscale") -> Summary:
    """Process ``jobs`` in order with a progress bar; failures are collected, never raised."""
    from tqdm import tqdm

    summary = Summary()
    start = time.perf_counter()
    bar = tqdm(jobs, desc=desc, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    write = log or (lambda message: bar.write(message, file=sys.stderr))
    try:
        for job in bar:
            bar.set_postfix_str(job.name[-40:], refresh=False)
            if not job.problem and not overwrite and existing_output(job) is not None:
                summary.skipped += 1
                continue
            reason = job.problem or _attempt(job, upscaler, max_pixels)
            if reason is None:
                summary.done += 1
            else:
                summary.failed.append((job.name, reason))
                write(f"failed: {job.name}: {reason}")
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary

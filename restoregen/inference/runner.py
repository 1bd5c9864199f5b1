"""The folder runner behind ``restoregen upscale``: find the images, upscale each, write, report.

Output names mirror input names (``OUTPUT/<relative folder>/<stem><suffix>.<ext>``). Before any
image is computed, the output folder is created and checked for writing, and partial files that an
interrupted run left there are removed. Results are never read as inputs (an OUTPUT inside INPUT,
also the results of an earlier run). Existing outputs are skipped, bad files are reported with the
reason and the run carries on; the summary names every failure and every file or folder it did not
read. Under ``accelerate launch`` (or ``torchrun``) each process takes every ``WORLD_SIZE``-th
file, starting at its ``RANK``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..fileio import check_writable_folder, remove_stale_parts
from ..imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageData,
    ImageReadError,
    fitting_extension,
    read_image,
    unreadable_format,
    write_image,
)
from .tiling import TileProgress, Upscaler

__all__ = ["Job", "Scan", "Summary", "UsageError", "collect_jobs", "existing_output", "prepare_output",
           "process_share", "run_jobs", "scan_inputs", "upscale_image"]


class UsageError(ValueError):
    """INPUT/OUTPUT that cannot work together (reported without a traceback)."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path  # with the requested extension; alpha/16-bit images may be written as .png instead
    name: str  # the source relative to INPUT, for messages
    problem: str | None = None  # known before running (e.g. two inputs that map to one output)


@dataclass
class Scan:
    """What :func:`scan_inputs` found under INPUT."""

    jobs: list[Job]
    ignored: list[tuple[str, str]]  # (name, why it is not read): other formats, sub-folders, our outputs
    output_folder: Path  # where the outputs go (created and checked by prepare_output)


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): not read at all
    seconds: float = 0.0
    megapixels: float = 0.0  # input pixels of the images done, in millions

    def lines(self) -> list[str]:
        rate = ""
        if self.done and self.seconds > 0:
            rate = f" ({self.megapixels:.3g} MP in, {self.megapixels / self.seconds:.3g} MP/s)"
        lines = [f"done {self.done}, skipped {self.skipped} (already there), failed {len(self.failed)}, "
                 f"not read {len(self.ignored)} in {self.seconds:.1f} s{rate}"]
        lines += [f"  failed: {name}: {reason}" for name, reason in self.failed]
        lines += [f"  not read: {name}: {reason}" for name, reason in self.ignored]
        return lines


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _output_name(relative: Path, suffix: str, ext: str) -> Path:
    return relative.with_name(f"{relative.stem}{suffix}.{ext}")


def _outputs_of_others(jobs: list[Job]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Drop the inputs that another input's output would be (or is, from an earlier run): with an
    OUTPUT inside INPUT, results must not be upscaled again on the next run."""
    writers: dict[Path, str] = {}
    for job in jobs:  # the requested output, and the .png that alpha/16-bit images fall back to
        for target in (job.target, job.target.with_suffix(".png")):
            writers.setdefault(target.resolve(), job.name)
    kept, ignored, dropped = [], [], set()
    for job in jobs:
        writer = writers.get(job.source.resolve())
        if writer is not None and writer != job.name and writer not in dropped:
            dropped.add(job.name)
            ignored.append((job.name, f"the output of {writer} (results are not read as inputs)"))
        else:
            kept.append(job)
    return kept, ignored


def scan_inputs(input_path: str | os.PathLike, output_path: str | os.PathLike, ext: str = "png", suffix: str = "",
                recursive: bool = False) -> Scan:
    """The images under ``input_path`` (a file or a folder), where each one's result goes, and
    what is not read, with the reason (hidden files and folders are passed over silently).

    Sub-folders are read with ``recursive``, except ``output_path`` when it lies inside the input.
    With a file as input, ``output_path`` is the output file if it has an image extension.
    """
    source, output = Path(input_path), Path(output_path)
    ext = ext.lower().lstrip(".")
    ignored: list[tuple[str, str]] = []
    if source.is_file():
        if output.suffix.lower() in IMAGE_EXTENSIONS:
            jobs, folder = [Job(source, output, source.name)], output.parent
        else:
            jobs, folder = [Job(source, output / _output_name(Path(source.name), suffix, ext), source.name)], output
    elif source.is_dir():
        files: list[Path] = []
        skip = output.resolve()
        for here, dirs, names in os.walk(source):
            descend = []
            for name in sorted(d for d in dirs if not d.startswith(".")):
                relative = Path(here, name).relative_to(source).as_posix() + "/"
                if Path(here, name).resolve() == skip:
                    ignored.append((relative, "the output folder"))
                elif recursive:
                    descend.append(name)
                else:
                    ignored.append((relative, "a sub-folder (add --recursive to process sub-folders)"))
            dirs[:] = descend
            for name in sorted(n for n in names if not n.startswith(".")):
                if _is_image_name(Path(name)):
                    files.append(Path(here, name))
                else:
                    ignored.append((Path(here, name).relative_to(source).as_posix(), unreadable_format(name)))
        jobs = [Job(f, output / _output_name(f.relative_to(source), suffix, ext), f.relative_to(source).as_posix())
                for f in files]
        jobs, outputs = _outputs_of_others(jobs)
        ignored += outputs
        folder = output
    else:
        raise UsageError(f"{source}: no such file or folder")
    return Scan(_check_targets(jobs), ignored, folder)


def collect_jobs(input_path: str | os.PathLike, output_path: str | os.PathLike, ext: str = "png", suffix: str = "",
                 recursive: bool = False) -> list[Job]:
    """The jobs of :func:`scan_inputs`."""
    return scan_inputs(input_path, output_path, ext, suffix, recursive).jobs


def _check_targets(jobs: list[Job]) -> list[Job]:
    """Refuse a job that would overwrite its own input; mark jobs whose outputs collide."""
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


def prepare_output(scan: Scan) -> list[Path]:
    """Before anything is computed: create the output folder and check that files can be written
    there (:class:`UsageError` if not), and remove the partial files of interrupted runs from the
    folders the jobs write to. Returns the removed files."""
    problem = check_writable_folder(scan.output_folder)
    if problem is not None:
        raise UsageError(f"output folder {scan.output_folder}: {problem}")
    removed: list[Path] = []
    for folder in sorted({job.target.parent for job in scan.jobs}):
        removed += remove_stale_parts(folder)
    return removed


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


def upscale_image(upscaler: Upscaler, image: ImageData, on_tile: TileProgress | None = None) -> ImageData:
    """Colour through the network; alpha upscaled bicubically; gray stays gray; bit depth kept.
    ``on_tile(done, total)`` after each tile (see :meth:`Upscaler.__call__`)."""
    pixels = torch.from_numpy(image.pixels).permute(2, 0, 1)[None]  # (1, C, H, W)
    channels = upscaler.info.in_channels
    if pixels.shape[1] == channels:
        out = upscaler(pixels, on_tile)
    elif channels == 3 and pixels.shape[1] == 1:  # gray through an RGB network: equal channels in, mean out
        out = upscaler(pixels.expand(1, 3, -1, -1), on_tile).mean(dim=1, keepdim=True)
    elif channels == 1:  # colour through a one-channel network: channel by channel
        out = torch.cat([upscaler(pixels[:, i:i + 1], on_tile) for i in range(pixels.shape[1])], dim=1)
    else:
        raise ValueError(f"cannot feed a {pixels.shape[1]}-channel image to a {channels}-channel network")
    height, width = out.shape[-2:]
    alpha = None if image.alpha is None else _resize_alpha(image.alpha, height, width)
    return ImageData(out[0].permute(1, 2, 0).contiguous().numpy(), alpha, image.bit_depth)


class _TileBar:
    """The second progress bar: the tiles of the current image, shown when it has more than one."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 1:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="  tiles", unit="tile", position=1, leave=False, file=sys.stderr,
                            dynamic_ncols=True, mininterval=0)  # a tile takes long enough to show each
        if total != self.bar.total or done < self.bar.n:  # smaller tiles after out-of-memory; next channel
            self.bar.reset(total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _attempt(job: Job, upscaler: Upscaler, max_pixels: int, progress: bool) -> tuple[str | None, float]:
    """Read, upscale and write one image: (None when done, else why it failed; its megapixels)."""
    tiles = _TileBar(progress)
    try:
        image = read_image(job.source, max_pixels)
        height, width = image.size
        tiles(0, upscaler.tile_count(height, width))  # the bar shows before the first tile is done
        result = upscale_image(upscaler, image, tiles)
        write_image(job.target.with_suffix("." + fitting_extension(job.target.suffix, image)), result)
    except ImageReadError as error:
        return str(error), 0.0
    except Exception as error:  # one bad file must not stop the run
        return f"{type(error).__name__}: {error}", 0.0
    finally:
        tiles.close()
    return None, height * width / 1e6


def run_jobs(jobs: list[Job], upscaler: Upscaler, overwrite: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
             progress: bool = True, log: Callable[[str], None] | None = None, desc: str = "upscale",
             ignored: list[tuple[str, str]] | None = None) -> Summary:
    """Process ``jobs`` in order with a progress bar for the files and one for the tiles of a large
    image; failures are collected, never raised. ``ignored`` (from :class:`Scan`) goes into the summary."""
    from tqdm import tqdm

    summary = Summary(ignored=list(ignored or []))
    start = time.perf_counter()
    bar = tqdm(jobs, desc=desc, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    write = log or (lambda message: bar.write(message, file=sys.stderr))
    try:
        for job in bar:
            bar.set_postfix_str(job.name[-40:], refresh=False)
            if not job.problem and not overwrite and existing_output(job) is not None:
                summary.skipped += 1
                continue
            reason, megapixels = (job.problem, 0.0) if job.problem else _attempt(job, upscaler, max_pixels, progress)
            if reason is None:
                summary.done += 1
                summary.megapixels += megapixels
            else:
                summary.failed.append((job.name, reason))
                write(f"failed: {job.name}: {reason}")
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary

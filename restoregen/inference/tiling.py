"""Run a super-resolution network over an image of any size, tile by tile, without seams.

The image and the output stay in CPU memory; only one tile at a time goes to the device, so the
image never has to fit on the GPU. Two things keep tiles from showing:

- tiles start on the network's window grid (multiples of ``size_multiple``), so away from its
  borders a tile computes exactly what the whole image would; tiling with an arbitrary context
  (Real-ESRGAN's ``tile_pad``) shifts the window grid of Swin-type networks inside every tile;
- neighbouring tiles share a band; its outer parts serve as context only and the two tiles
  cross-fade linearly over its middle (weights sum to one), so there is no hard cut where they meet.

:class:`Upscaler` adds what a folder run needs: a tile size that depends only on the model, the
device and its total memory (``"auto"``; never on the memory free at the moment, so the same
command gives the same pixels), retry with smaller tiles on out-of-memory, bfloat16 end to end or
float16 with a range guard (:mod:`.precision`; float16 alone overflows in Swin networks and turns
images black), a float32 fallback should a reduced precision still give non-finite values, and on
CUDA a captured CUDA graph for the full-size tiles, which all have one shape.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .loading import ModelInfo
from .precision import fp16_guard, precision_context, weight_dtype

__all__ = ["NonFiniteOutput", "TileProgress", "Upscaler", "blend_ramp", "resolve_device", "resolve_precision",
           "tile_starts", "tiled_forward", "total_memory"]

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MIN_TILE = 32
MAX_AUTO_TILE = {"cuda": 1024, "cpu": 512}  # larger tiles bring little once the context is wide enough
BLEND_FRACTION = 0.25  # middle part of a shared band across which neighbouring tiles cross-fade


class NonFiniteOutput(RuntimeError):
    """The network produced inf/NaN (typically float16 overflow)."""


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of windows of (at most) ``tile`` pixels covering ``[0, length)``.

    Starts are multiples of ``align`` (the network's window grid: a tile then computes what the
    whole image would, away from its borders), a constant stride apart so that neighbours share at
    least ``overlap`` pixels. The last window starts as early as the grid allows while still
    reaching ``length`` (at most ``tile`` pixels), so it keeps as much context as the others.
    """
    if tile <= 0 or length <= tile:
        return [0]
    align = max(1, min(align, tile))
    stride = max((tile - overlap) // align * align, align)
    count = math.ceil((length - tile) / stride) + 1
    last = -(-(length - tile) // align) * align
    return [i * stride for i in range(count - 1)] + [last]


def blend_ramp(size: int, left: int, right: int, fraction: float = BLEND_FRACTION) -> Tensor:
    """1-D weights over a tile with bands of ``left`` / ``right`` pixels shared with its neighbours.

    In a shared band, the outer part is context only (weight 0): the tile saw too little around it.
    Across the middle ``fraction`` of the band the weight cross-fades linearly, so two tiles sharing a
    band get weights that add up to one and meet at its centre, where both saw the same context.
    """
    weight = torch.ones(size)
    for width, flip in ((left, False), (right, True)):
        if width > 0:
            fade = max(width * fraction, 1.0)
            ramp = ((torch.arange(width) + 0.5 - (width - fade) / 2) / fade).clamp(0, 1)
            span = slice(size - width, size) if flip else slice(0, width)
            weight[span] = torch.minimum(weight[span], ramp.flip(0) if flip else ramp)
    return weight


def _bands(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """(shared with the previous window, shared with the next window) for each window."""
    ends = [min(s + tile, length) for s in starts]
    return [(ends[i - 1] - s if i > 0 else 0, ends[i] - starts[i + 1] if i + 1 < len(starts) else 0)
            for i, s in enumerate(starts)]


TileProgress = Callable[[int, int], None]  # (tiles done, tiles in the image), after each tile


def tiled_forward(run: Callable[[Tensor], Tensor], image: Tensor, scale: int, tile: int, overlap: int,
                  align: int = 1, on_tile: TileProgress | None = None) -> Tensor:
    """``run`` over ``image`` (1, C, H, W) in overlapping ``tile`` x ``tile`` windows, smoothly blended.

    ``run`` maps a CPU patch (1, C, h, w) to a CPU float32 (1, C', h*scale, w*scale). ``tile <= 0`` runs
    the whole image at once. Returns the (1, C', H*scale, W*scale) float32 result on the CPU.
    ``on_tile(done, total)`` is called after each window (also after the single one).
    """
    _, _, height, width = image.shape
    if tile <= 0 or (height <= tile and width <= tile):
        out = run(image)
        if on_tile is not None:
            on_tile(1, 1)
        return out
    rows, cols = tile_starts(height, tile, overlap, align), tile_starts(width, tile, overlap, align)
    row_bands, col_bands = _bands(rows, tile, height), _bands(cols, tile, width)
    out = weights = None
    done, total = 0, len(rows) * len(cols)
    for y, (top, bottom) in zip(rows, row_bands, strict=True):
        for x, (left, right) in zip(cols, col_bands, strict=True):
            patch = image[:, :, y:y + tile, x:x + tile]
            result = run(patch)
            h, w = result.shape[-2:]
            if out is None:
                out = torch.zeros(1, result.shape[1], height * scale, width * scale)
                weights = torch.zeros(1, 1, height * scale, width * scale)
            weight = blend_ramp(h, top * scale, bottom * scale)[:, None] * blend_ramp(w, left * scale, right * scale)
            ys, xs = slice(y * scale, y * scale + h), slice(x * scale, x * scale + w)
            out[:, :, ys, xs] += result * weight
            weights[:, :, ys, xs] += weight
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    return out.div_(weights)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: this process's GPU (``LOCAL_RANK`` under ``accelerate launch``/``torchrun``) or the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available (use --device cpu)")
    return device


def resolve_precision(name: str, device: torch.device, refused: tuple[torch.dtype, ...] = ()) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it, float32 otherwise. ``refused``: dtypes the
    network does not support (:attr:`ModelInfo.refused`); asking for one is an error."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported() and torch.bfloat16 not in refused:
            return torch.bfloat16
        return torch.float32
    try:
        dtype = PRECISIONS[name]
    except KeyError:
        raise ValueError(f"precision {name!r}: choose auto, {', '.join(PRECISIONS)}") from None
    if dtype in refused:
        raise ValueError(f"precision {name}: this network does not support {str(dtype).removeprefix('torch.')} "
                         f"(use auto or fp32)")
    return dtype


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def total_memory(device: torch.device) -> int:
    """The device's total memory in bytes (on the CPU: the machine's RAM); it does not change while
    other programs come and go, unlike the free memory."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


class _GraphedForward:
    """``model`` captured in a CUDA graph for one input shape: replays copy the input into a static
    buffer and return the static output (valid until the next replay)."""

    def __init__(self, model: nn.Module, example: Tensor) -> None:
        device = example.device
        self.input = example.clone()
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # warm-up: lazy caches, workspaces and compiled kernels
            model(self.input)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = model(self.input)

    def __call__(self, x: Tensor) -> Tensor:
        self.input.copy_(x)
        self.graph.replay()
        return self.output


class Upscaler:
    """A loaded network on a device and precision, applied tile by tile to CPU images.

    ``tile`` is the side of the square window the network sees (``"auto"``: :meth:`auto_tile`;
    0: the whole image at once); ``overlap`` is how many input pixels neighbouring windows share.
    The tile size shrinks (and stays shrunk) after an out-of-memory error.

    ``precision``: ``bf16`` runs the network in bfloat16 end to end; ``fp16`` keeps float32 weights
    and runs every convolution and linear layer in float16 behind :func:`~.precision.fp16_guard`.

    ``cuda_graphs`` (``None``: on for CUDA devices): the second time a full ``tile x tile`` patch of
    one dtype comes, the forward pass is captured in a CUDA graph and replayed for every later one
    (no per-kernel launch cost; one private memory pool per shape). Other shapes run eagerly; on the
    CPU nothing changes. A model that cannot be captured runs eagerly, with one log line.
    """

    def __init__(self, model: nn.Module, info: ModelInfo, device: torch.device | str = "cpu",
                 precision: str = "auto", tile: int | str = "auto", overlap: int = 32,
                 log: Callable[[str], None] = lambda message: None, cuda_graphs: bool | None = None) -> None:
        self.device = torch.device(device)
        self.dtype = resolve_precision(precision, self.device, info.refused)
        self.info = info
        self.model = model.eval().to(self.device, weight_dtype(self.dtype))
        if self.dtype == torch.float16:
            fp16_guard(self.model)
        if info.fixed_size:  # a static graph takes tiles of exactly this side
            tile = info.fixed_size
        self.tile: int | None = None if tile == "auto" else int(tile)
        self.overlap = overlap
        self.log = log
        if cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {self.device}")
        self.cuda_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self._graphs: dict[tuple, _GraphedForward] = {}
        self._shapes_seen: set[tuple] = set()

    def _round(self, tile: int) -> int:
        multiple = max(self.info.size_multiple, 1)
        return max(tile // multiple * multiple, multiple)

    def bytes_per_pixel(self) -> float:
        """Peak device memory per input pixel of one forward pass (measured on CUDA, estimated on CPU)."""
        estimate = torch.finfo(self.dtype).bits / 8 * 64 * self.info.width
        if self.device.type != "cuda":
            return estimate
        side = self._round(max(64, 4 * self.info.size_multiple))
        probe = torch.zeros(1, self.info.in_channels, side, side, device=self.device, dtype=self.dtype)
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        with torch.inference_mode(), precision_context(self.device, self.dtype):
            self.model(probe)
        peak = torch.cuda.max_memory_allocated(self.device) - base
        return max(peak / side**2 * 1.25, 1.0)

    def auto_tile(self) -> int:
        """The largest tile whose forward pass fits in half the device's total memory (a quarter on
        the CPU), at most ``MAX_AUTO_TILE``: a function of the model, the device and its size only."""
        share = 0.5 if self.device.type == "cuda" else 0.25
        side = int(math.sqrt(total_memory(self.device) * share / self.bytes_per_pixel()))
        return self._round(min(max(side, MIN_TILE), MAX_AUTO_TILE.get(self.device.type, 512)))

    def _run(self, patch: Tensor) -> Tensor:
        x = patch.to(self.device).to(self.dtype)
        with torch.inference_mode(), precision_context(self.device, self.dtype):
            result = self._forward(x)
        if self.dtype != torch.float32 and not torch.isfinite(result).all():
            raise NonFiniteOutput(f"non-finite values in {self.dtype} output")
        return result.float().cpu()

    def _forward(self, x: Tensor) -> Tensor:
        """The model on one patch: through a CUDA graph for repeated full-size tiles, else eagerly."""
        key = (tuple(x.shape), x.dtype)
        full = self._round(self.tile) if self.tile else 0
        if not self.cuda_graphs or tuple(x.shape[-2:]) != (full, full):
            return self.model(x)
        if key in self._graphs:
            return self._graphs[key](x)
        if key not in self._shapes_seen:  # a shape seen once (a single-tile image) is not worth capturing
            self._shapes_seen.add(key)
            return self.model(x)
        try:
            self._graphs[key] = _GraphedForward(self.model, x)
        except Exception as error:  # noqa: BLE001 - any capture failure: stay eager
            if _is_out_of_memory(error):
                raise
            self.log(f"CUDA graphs are not available for this model ({type(error).__name__}: {error}); "
                     "running eagerly")
            self.cuda_graphs = False
            return self.model(x)
        return self._graphs[key](x)

    def _drop_graphs(self) -> None:
        self._graphs.clear()
        self._shapes_seen.clear()

    def _resolve_tile(self) -> None:
        if self.tile is None:
            self.tile = self.auto_tile()
            self.log(f"tile size {self.tile} (auto, {self.device}: from the model and "
                     f"{total_memory(self.device) / 2**30:.0f} GiB of memory; smaller images are not tiled)")

    def tile_count(self, height: int, width: int) -> int:
        """How many tiles an image of ``height`` x ``width`` takes at the current tile size."""
        self._resolve_tile()
        tile = self._round(self.tile) if self.tile else 0
        if tile <= 0 or (height <= tile and width <= tile):
            return 1
        overlap = min(self.overlap, tile // 2)
        align = self.info.size_multiple
        return len(tile_starts(height, tile, overlap, align)) * len(tile_starts(width, tile, overlap, align))

    def __call__(self, image: Tensor, on_tile: TileProgress | None = None) -> Tensor:
        """(1, C, H, W) float image on the CPU -> (1, C, H*scale, W*scale) float32 on the CPU.
        ``on_tile(done, total)`` after each tile; ``total`` changes if out-of-memory shrinks the tiles."""
        self._resolve_tile()
        while True:
            tile = self._round(self.tile) if self.tile > 0 else 0
            overlap = min(self.overlap, tile // 2)
            try:
                return tiled_forward(self._run, image, self.info.scale, tile, overlap, self.info.size_multiple,
                                     on_tile)
            except NonFiniteOutput:
                self.log(f"{self.dtype} gave non-finite values (Swin attention overflows in float16); "
                         "switching to float32")
                self.dtype = torch.float32
                self.model.float()
                self._drop_graphs()
            except RuntimeError as error:  # torch.OutOfMemoryError, or the CPU allocator's RuntimeError
                if not _is_out_of_memory(error):
                    raise
                _, _, height, width = image.shape
                current = tile if tile > 0 else max(height, width)
                smaller = self._round(current // 2)
                if smaller < MIN_TILE or smaller >= current:
                    raise
                self._drop_graphs()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.log(f"out of memory with {current}px tiles; retrying with {smaller}px")
                self.tile = smaller

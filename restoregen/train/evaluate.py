"""Running an SR network over an evaluation dataset: metrics on 8-bit images (BasicSR's
protocol) and optional saving of the results. Shared by validation and ``restoregen test``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm import tqdm

from ..imageio import ImageData, write_image
from ..metrics import calculate_metric


def to_image(tensor: Tensor) -> np.ndarray:
    """RGB (C, H, W) in [0, 1] -> 8-bit BGR (H, W, C) (gray: (H, W)), rounded as basicsr's tensor2img."""
    array = tensor.detach().float().cpu().clamp_(0, 1).numpy().transpose(1, 2, 0)
    array = array[..., ::-1] if array.shape[2] == 3 else array[..., 0]
    return (array * 255.0).round().astype(np.uint8)


@torch.no_grad()
def run_padded(net: nn.Module, lq: Tensor, multiple: int = 1) -> Tensor:
    """``net(lq)`` with ``lq`` reflect-padded to ``multiple`` and the result cropped back."""
    height, width = lq.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        lq = F.pad(lq, (0, pad_w, 0, pad_h), mode="reflect")
    out = net(lq)
    scale = out.shape[-2] // lq.shape[-2]
    return out[..., : height * scale, : width * scale]


@torch.no_grad()
def run_tiled(net: nn.Module, lq: Tensor, tile_size: int, tile_pad: int, multiple: int = 1) -> Tensor:
    """The official test pipelines' tile mode (option ``tile``): the input is cut into
    ``tile_size`` tiles, each run with ``tile_pad`` pixels of context and pasted without blending."""
    height, width = lq.shape[-2:]
    scale = None
    out = None
    for top in range(0, height, tile_size):
        for left in range(0, width, tile_size):
            bottom, right = min(top + tile_size, height), min(left + tile_size, width)
            y0, x0 = max(top - tile_pad, 0), max(left - tile_pad, 0)
            y1, x1 = min(bottom + tile_pad, height), min(right + tile_pad, width)
            tile = run_padded(net, lq[..., y0:y1, x0:x1], multiple)
            if out is None:
                scale = tile.shape[-2] // (y1 - y0)
                out = lq.new_zeros((*lq.shape[:-3], tile.shape[-3], height * scale, width * scale))
            out[..., top * scale:bottom * scale, left * scale:right * scale] = tile[
                ..., (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
    return out


def evaluate(net: nn.Module, loader, metrics: dict | None, *, device: torch.device, multiple: int = 1,
             save_path=None, progress: bool = False, desc: str = "", tile: dict | None = None) -> dict[str, float]:
    """Mean of each metric over ``loader`` (1 image per batch). ``save_path(name) -> Path`` names
    each result image to write, or None; ``tile`` ({tile_size, tile_pad}) runs in tiles."""
    metrics = metrics or {}
    totals = {name: 0.0 for name in metrics}
    count = 0
    was_training = net.training
    net.eval()
    try:
        for batch in tqdm(loader, desc=desc, unit="image", disable=not progress, leave=False):
            lq = batch["lq"].to(device)
            if tile:
                result = to_image(run_tiled(net, lq, tile["tile_size"], tile.get("tile_pad", 0), multiple)[0])
            else:
                result = to_image(run_padded(net, lq, multiple)[0])
            name = Path(batch["lq_path"][0]).stem
            if "gt" in batch:
                reference = to_image(batch["gt"][0])
                for key, opt in metrics.items():
                    totals[key] += calculate_metric({"img": result, "img2": reference}, opt)
                count += 1
            if save_path is not None:
                write_image(save_path(name), ImageData.from_uint8(result, bgr=True))
    finally:
        net.train(was_training)
    return {key: value / count for key, value in totals.items()} if count else {}

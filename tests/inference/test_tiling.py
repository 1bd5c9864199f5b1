"""Tiling: coverage, seamless blending on a real photo, out-of-memory retry and the float16 guard."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregen.inference.loading import ModelInfo, load_model
from restoregen.inference.tiling import Upscaler, blend_ramp, resolve_precision, tile_starts, tiled_forward
from tests.reference_data import REFERENCE_DIR


def _psnr(a: Tensor, b: Tensor) -> float:
    return 10 * math.log10(1.0 / F.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item())


def hard_cut_tiles(run, image: Tensor, scale: int, tile: int, pad: int) -> Tensor:
    """Real-ESRGAN's ``tile_process``: ``tile`` x ``tile`` cores with ``pad`` pixels of context, pasted hard."""
    _, _, height, width = image.shape
    out = None
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            y0, y1, x0, x1 = max(y - pad, 0), min(y + tile + pad, height), max(x - pad, 0), min(x + tile + pad, width)
            result = run(image[:, :, y0:y1, x0:x1])
            if out is None:
                out = torch.zeros(1, result.shape[1], height * scale, width * scale)
            h, w = min(tile, height - y), min(tile, width - x)
            out[:, :, y * scale:(y + h) * scale, x * scale:(x + w) * scale] = \
                result[:, :, (y - y0) * scale:(y - y0 + h) * scale, (x - x0) * scale:(x - x0 + w) * scale]
    return out


@pytest.mark.parametrize("length,tile,overlap,align", [(100, 48, 16, 8), (64, 48, 16, 8), (37, 16, 4, 1),
                                                       (256, 64, 32, 16), (40, 64, 8, 8), (97, 20, 19, 4)])
def test_tile_starts_cover_aligned_and_overlapping(length, tile, overlap, align) -> None:
    starts = tile_starts(length, tile, overlap, align)
    ends = [min(s + tile, length) for s in starts]
    assert starts[0] == 0 and ends[-1] == length
    assert all(s % align == 0 for s in starts)
    assert all(ends[i] - starts[i + 1] >= min(overlap, tile - align) for i in range(len(starts) - 1))
    assert all(ends[i] < length for i in range(len(starts) - 1))  # no window is redundant


def test_blend_ramps_add_up_to_one() -> None:
    band = 12
    left_tile, right_tile = blend_ramp(40, 0, band), blend_ramp(40, band, 0)
    assert torch.allclose(left_tile[-band:] + right_tile[:band], torch.ones(band))
    assert left_tile[-1] == 0 and right_tile[0] == 0  # the outer part of a band is context only


def test_pixelwise_network_is_unchanged_by_tiling() -> None:
    image = torch.rand(1, 3, 45, 70, generator=torch.Generator().manual_seed(0))

    def run(patch):
        return F.interpolate(patch, scale_factor=3, mode="nearest") ** 2

    assert torch.allclose(tiled_forward(run, image, 3, 24, 8, align=4), run(image), atol=1e-6)


@pytest.mark.skipif(not (REFERENCE_DIR / "hat").is_dir(), reason="needs ../shared/reference")
def test_blended_tiles_beat_hard_cut_tiles_on_a_photo() -> None:
    """HAT from a fixture case (window 8, x2) on an 80x80 astronaut crop: tiles against the untiled output.

    Same tile size and context: Real-ESRGAN-style 32 px cores with ``pad`` px of context on each side
    (3 x 3 tiles), and our windows of 32 + 2 * pad px sharing 2 * pad px (2 x 2 tiles): every seam has
    ``pad`` px of context on each side in both.
    """
    skimage_data = pytest.importorskip("skimage.data")
    crop = torch.from_numpy(skimage_data.astronaut()[80:160, 176:256].copy()).permute(2, 0, 1)[None].float() / 255
    model, info = load_model(REFERENCE_DIR / "hat" / "hat_pad_wrapper_x2" / "weights.safetensors")

    def run(patch):
        with torch.no_grad():
            return model(patch)

    untiled = run(crop)
    measured = {}
    for pad in (8, 10):  # 8: a multiple of HAT's window here; 10: Real-ESRGAN's default tile_pad
        hard = hard_cut_tiles(run, crop, info.scale, 32, pad)
        blended = tiled_forward(run, crop, info.scale, 32 + 2 * pad, 2 * pad, align=info.size_multiple)
        measured[pad] = (_psnr(hard, untiled), _psnr(blended, untiled))
    (hard8, blend8), (hard10, blend10) = measured[8], measured[10]
    assert blend8 > hard8 + 2
    assert blend10 > hard10 + 30
    # the figures quoted in README.md ("Upscaling")
    assert hard8 == pytest.approx(83.3, abs=0.5) and blend8 == pytest.approx(87.5, abs=0.5)
    assert hard10 == pytest.approx(30.3, abs=0.5) and blend10 == pytest.approx(99.4, abs=1.5)


class _Doubler(nn.Module):
    """Nearest x2; runs out of memory above ``limit`` pixels; overflows in float16 when ``overflow_fp16``."""

    def __init__(self, limit: int = 10**9, overflow_fp16: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.limit, self.overflow_fp16, self.sizes = limit, overflow_fp16, []

    def forward(self, x: Tensor) -> Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        y = F.interpolate(x, scale_factor=2, mode="nearest") * self.weight
        return y * 1e5 if self.overflow_fp16 and x.dtype == torch.float16 else y


INFO = ModelInfo(arch="Doubler", scale=2, in_channels=3, size_multiple=8, dtypes=(torch.float32,))


def test_out_of_memory_retries_with_smaller_tiles() -> None:
    image = torch.rand(1, 3, 100, 90)
    messages = []
    model = _Doubler(limit=40 * 40)
    upscaler = Upscaler(model, INFO, tile=128, overlap=8, log=messages.append)
    out = upscaler(image)
    assert torch.allclose(out, F.interpolate(image, scale_factor=2, mode="nearest"), atol=1e-6)
    assert upscaler.tile == 32 and max(h * w for h, w in model.sizes[-4:]) <= 32 * 32
    assert "out of memory with 128px tiles; retrying with 64px" in messages[0]
    with pytest.raises(torch.OutOfMemoryError):  # nothing left to shrink
        Upscaler(_Doubler(limit=10), INFO, tile=64)(image)


def test_float16_overflow_falls_back_to_float32() -> None:
    messages = []
    upscaler = Upscaler(_Doubler(overflow_fp16=True), INFO, precision="fp16", tile=0, log=messages.append)
    image = torch.rand(1, 3, 16, 16)
    out = upscaler(image)
    assert torch.isfinite(out).all() and torch.equal(out, F.interpolate(image, scale_factor=2, mode="nearest"))
    assert upscaler.dtype == torch.float32 and "switching to float32" in messages[0]


def test_precision_and_auto_tile_on_cpu() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))
    upscaler = Upscaler(_Doubler(), INFO)
    tile = upscaler.auto_tile()
    assert 32 <= tile <= 512 and tile % INFO.size_multiple == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_tiles_match_cpu(tiny_model_file) -> None:
    model, info = load_model(tiny_model_file)
    image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    reference = Upscaler(model, info, tile=0)(image)
    upscaler = Upscaler(load_model(tiny_model_file)[0], info, device="cuda", precision="auto", tile="auto")
    assert upscaler.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    upscaler.tile = 32
    assert (upscaler(image) - reference).abs().max() < 0.05


def test_tile_progress_and_out_of_memory_restart() -> None:
    calls, messages = [], []
    upscaler = Upscaler(_Doubler(limit=40 * 40), INFO, tile=64, overlap=8, log=messages.append)
    assert upscaler.tile_count(100, 90) == 4 and upscaler.tile_count(60, 64) == 1
    upscaler(torch.rand(1, 3, 100, 90), on_tile=lambda done, total: calls.append((done, total)))
    assert "out of memory with 64px tiles; retrying with 32px" in messages[0]
    assert calls == [(done, 16) for done in range(1, 17)]  # the 64 px attempt failed on its first tile
    assert upscaler.tile_count(100, 90) == 16


def test_auto_tile_ignores_the_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real = os.sysconf
    sizes = set()
    for free_pages in (16, 2**30):
        monkeypatch.setattr(os, "sysconf", lambda name, free=free_pages: free if name == "SC_AVPHYS_PAGES"
                            else real(name))
        sizes.add(Upscaler(_Doubler(), INFO).auto_tile())
    assert len(sizes) == 1

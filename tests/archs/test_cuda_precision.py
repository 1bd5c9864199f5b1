"""Reduced precision on the GPU: the fixture models in bfloat16, and a real-photo x4 upscale.

All marked ``cuda``: skipped where there is no GPU (CI).
"""

import math

import pytest
import torch

from restoregen.archs import build
from restoregen.attention import attention_backend, available_backends
from restoregen.inference.loading import network_info
from restoregen.inference.tiling import Upscaler
from tests.reference_data import case_dirs, image_to_image_families, load_case, params

pytestmark = pytest.mark.cuda

SR_CASES = [p for family in image_to_image_families() for p in case_dirs(family)]
HAT_S_X4 = dict(upscale=4, in_chans=3, img_size=64, window_size=16, compress_ratio=24, squeeze_factor=24,
                conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[6] * 6, embed_dim=144, num_heads=[6] * 6,
                mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv")


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float().cpu() - ref.float()).abs().max() / ref.float().abs().max()).item()


@pytest.mark.parametrize("backend", ["auto", *available_backends()])
@pytest.mark.parametrize("path", params(SR_CASES))
def test_fixture_models_in_bf16(path, backend):
    config, weights, io = load_case(path)
    model = build(config["arch"], **config["kwargs"]).eval()
    model.load_state_dict(weights, strict=True)
    model = model.cuda().to(torch.bfloat16)
    with attention_backend(backend), torch.inference_mode():
        out = model(io["input"].cuda().to(torch.bfloat16))
    assert _relative_error(out, io["output"]) <= 1e-2


def _photo() -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(data.astronaut()[:256, :256].copy()).permute(2, 0, 1)[None].float() / 255
    return torch.nn.functional.interpolate(image, scale_factor=0.5, mode="bicubic", antialias=True).clamp(0, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / torch.mean((a.float() - b.float()) ** 2).item())


def test_real_photo_upscale_bf16_and_fp16():
    """HAT-S-sized random weights, a 128x128 photo: bf16 within 0.01 dB of fp32, fp16 finite."""
    photo = _photo()
    target = torch.nn.functional.interpolate(photo, scale_factor=4, mode="bicubic").clamp(0, 1)
    outputs = {}
    for precision in ("fp32", "bf16", "fp16"):
        torch.manual_seed(0)
        model = build("HAT", **HAT_S_X4).eval()
        info = network_info("HAT", model, HAT_S_X4, dtypes=(torch.float32,))
        upscaler = Upscaler(model, info, device="cuda", precision=precision, tile=0)
        outputs[precision] = upscaler(photo)
        assert upscaler.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert torch.isfinite(outputs["fp16"]).all()  # and no float32 fallback (dtype checked above)
    assert abs(_psnr(outputs["bf16"], target) - _psnr(outputs["fp32"], target)) < 0.01

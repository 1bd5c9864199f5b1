"""Image-quality metrics by their BasicSR option-file ``type``: ``calculate_metric(data, section)``.

PSNR/SSIM give basicsr.metrics' numbers; LPIPS loads ``lpips`` only when used. FID and KID for
generative models are in :mod:`restoregen.metrics.fid`.
"""

from __future__ import annotations

from .._lazy import load_entry
from ..config.schema import BOOL, INT, Choice, OptionType

_IMAGE = {"crop_border": INT, "test_y_channel": BOOL, "input_order": Choice(("HWC", "CHW"))}

# option-file type -> "module:function" (a function takes (img, img2, **options) -> float) and the
# options of its section besides those every metric takes (restoregen.config.basicsr)
METRICS: dict[str, OptionType] = {
    "calculate_psnr": OptionType("psnr_ssim:calculate_psnr", _IMAGE),
    "calculate_ssim": OptionType("psnr_ssim:calculate_ssim", _IMAGE),
    "calculate_lpips": OptionType("lpips:calculate_lpips",
                                  {"crop_border": INT, "net": Choice(("alex", "vgg", "squeeze"))}),
}


def metric_function(name: str):
    return load_entry(__name__, METRICS, name, "metric")


def calculate_metric(data: dict, opt: dict) -> float:
    """``data`` holds ``img`` (result) and ``img2`` (reference), 8-bit BGR; ``opt`` a metric section."""
    kwargs = {k: v for k, v in opt.items() if k not in ("type", "better")}
    return metric_function(opt["type"])(data["img"], data["img2"], **kwargs)


def calculate_psnr(*args, **kwargs) -> float:
    return metric_function("calculate_psnr")(*args, **kwargs)


def calculate_ssim(*args, **kwargs) -> float:
    return metric_function("calculate_ssim")(*args, **kwargs)


__all__ = ["METRICS", "calculate_metric", "calculate_psnr", "calculate_ssim", "metric_function"]

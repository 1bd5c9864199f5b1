"""``restoregen info --model FILE``: what a checkpoint is and what runs it."""

from __future__ import annotations

import torch
from torch import nn

from .loading import ModelInfo

__all__ = ["model_report"]

_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _precisions(info: ModelInfo) -> str:
    listed = [_NAMES[d] for d in info.dtypes if d in _NAMES]
    on_request = [_NAMES[d] for d in _NAMES if d not in info.dtypes and d not in info.refused]
    text = ", ".join(listed)
    if on_request:
        text += f" ({', '.join(on_request)} on request: range-guarded, float32 fallback)"
    if info.implementation == "onnxruntime":
        text += " (fed float32; the graph computes in its own precision)"
    return text


def _implementation(model: nn.Module, info: ModelInfo) -> str:
    if info.implementation == "spandrel":
        import spandrel

        net = model.net
        return f"spandrel {spandrel.__version__} ({type(net).__module__}.{type(net).__qualname__})"
    if info.implementation == "onnxruntime":
        import onnxruntime

        meta = info.kwargs.get("onnx_metadata", {})
        graph = ", ".join(f"{key} {meta[key]}" for key in ("opset", "dynamic", "implementation") if meta.get(key))
        return f"onnxruntime {onnxruntime.__version__}" + (f" (graph: {graph})" if graph else "")
    return f"restoregen ({type(model).__module__}.{type(model).__qualname__})"


def model_report(model: nn.Module, info: ModelInfo) -> list[str]:
    """The lines ``restoregen info --model`` prints."""
    multiple = (f"{info.fixed_size} (a static graph: tiles of exactly {info.fixed_size}x{info.fixed_size})"
                if info.fixed_size else f"{info.size_multiple} (inputs are padded to it; tiles start on it)")
    if info.min_size > info.size_multiple:
        multiple += f", at least {info.min_size} pixels"
    rows = [
        ("model", info.source),
        ("architecture", info.arch),
        ("sub-type", info.subtype or "-"),
        ("scale", f"x{info.scale}"),
        ("channels", f"{info.in_channels} in, {info.out_channels or info.in_channels} out"),
        ("parameters", f"{info.parameters:,}" if info.parameters else "- (an ONNX graph)"),
        ("size multiple", multiple),
        ("precisions", _precisions(info)),
        ("implementation", _implementation(model, info)),
    ]
    return [f"{name:<15}{value}" for name, value in rows]

"""Running an ONNX graph in onnxruntime through restoregen's tiler.

:func:`load_onnx` gives an :class:`OnnxNetwork` (an ``nn.Module`` without parameters whose forward
calls onnxruntime) and its :class:`~.loading.ModelInfo`, read from the metadata that
``restoregen export`` writes (:data:`METADATA_KEYS`). A graph without that metadata is probed: its
scale from one run on a small input, a static input size becomes the fixed tile size.

The graph takes sides that are multiples of ``size_multiple`` (or exactly ``fixed_size``): the
network's own padding is not in it. :class:`OnnxNetwork` pads as the PyTorch networks do
(reflect, bottom and right) and crops the output, so any tile size works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..attention.windows import pad_to_multiple
from ..checkpoints import CheckpointError
from .loading import ModelInfo

__all__ = ["METADATA_KEYS", "OnnxNetwork", "load_onnx", "onnxruntime_version"]

# what `restoregen export` writes into the graph's metadata_props (all values are strings)
METADATA_KEYS = ("format", "arch", "subtype", "implementation", "scale", "in_channels", "out_channels",
                 "size_multiple", "fixed_size", "dtype", "opset", "dynamic", "source")
_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def _session(path: str, device: torch.device):
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch (OMP_NUM_THREADS, --threads)
    return ort.InferenceSession(path, sess_options=options, providers=providers)


class OnnxNetwork(nn.Module):
    """An onnxruntime session as a module: (1, C, h, w) float tensor in, float32 tensor out."""

    def __init__(self, session, multiple: int = 1, fixed_size: int = 0) -> None:
        super().__init__()
        self.session = session
        self.multiple, self.fixed_size = max(multiple, 1), fixed_size
        graph_input = session.get_inputs()[0]
        self.input_name = graph_input.name
        if graph_input.type not in _NUMPY:
            raise CheckpointError(f"the graph's input is {graph_input.type}; expected a float tensor")
        self.input_dtype = _NUMPY[graph_input.type]

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if self.fixed_size and max(height, width) > self.fixed_size:
            raise ValueError(f"this ONNX graph takes tiles of at most {self.fixed_size} pixels, got {height}x{width}")
        # up to the multiple, or exactly to the fixed side (the next multiple of it)
        padded = pad_to_multiple(x.float(), self.fixed_size or self.multiple)
        feed = padded.detach().cpu().numpy().astype(self.input_dtype, copy=False)
        out = self.session.run(None, {self.input_name: feed})[0]
        scale_h, scale_w = out.shape[-2] // padded.shape[-2], out.shape[-1] // padded.shape[-1]
        result = torch.from_numpy(np.ascontiguousarray(out[..., :height * scale_h, :width * scale_w])).float()
        return result.to(x.device)


def _meta_int(meta: dict[str, str], key: str, default: int) -> int:
    try:
        return int(meta[key])
    except (KeyError, ValueError):
        return default


def load_onnx(path: str | Path, device: torch.device | str = "cpu") -> tuple[OnnxNetwork, ModelInfo]:
    """An ONNX file as ``(OnnxNetwork, ModelInfo)`` (see the module docstring)."""
    path = Path(path)
    if onnxruntime_version() is None:
        raise CheckpointError(f"{path}: running ONNX files needs onnxruntime: pip install 'restoregen[onnx]'")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        session = _session(str(path), torch.device(device))
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({type(error).__name__}: {error})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    graph_input = session.get_inputs()[0]
    shape = list(graph_input.shape)
    if len(shape) != 4:
        raise CheckpointError(f"{path}: expected one image input (N, C, H, W), found shape {shape}")
    static = [dim for dim in shape[2:] if isinstance(dim, int)]
    in_channels = _meta_int(meta, "in_channels", shape[1] if isinstance(shape[1], int) else 3)
    fixed = _meta_int(meta, "fixed_size", static[0] if len(static) == 2 and static[0] == static[1] else 0)
    if len(static) == 2 and static[0] != static[1]:
        raise CheckpointError(f"{path}: a static input of {static[0]}x{static[1]}; restoregen tiles squares only")
    multiple = _meta_int(meta, "size_multiple", 1)
    model = OnnxNetwork(session, multiple, fixed)
    scale = _meta_int(meta, "scale", 0)
    if scale <= 0:  # not written by restoregen: measure it
        side = fixed or max(multiple, 16)
        with torch.inference_mode():
            scale = model(torch.rand(1, in_channels, side, side)).shape[-1] // side
    out_channels = _meta_int(meta, "out_channels", in_channels)
    dtype = meta.get("dtype", graph_input.type.removeprefix("tensor(").removesuffix(")"))
    info = ModelInfo(
        arch=meta.get("arch", "ONNX graph"),
        scale=scale,
        in_channels=in_channels,
        size_multiple=fixed or multiple,
        dtypes=(torch.float32,),
        source=path.name,
        implementation="onnxruntime",
        subtype=", ".join(part for part in (meta.get("subtype", ""), dtype) if part),
        out_channels=out_channels,
        refused=(torch.bfloat16, torch.float16),  # the graph runs in its own precision; feed it float32
        fixed_size=fixed,
        kwargs={"onnx_metadata": meta},
    )
    return model, info

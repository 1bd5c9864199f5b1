"""``restoregen export --model FILE --format onnx|safetensors OUT``.

ONNX: the network is traced by PyTorch's ``torch.export``-based exporter on the plain ``math``
attention path (no oneDNN-only operators, no fused epilogues; see :mod:`restoregen.attention.epilogue`),
so the graph runs on any onnxruntime execution provider. Batch, height and width are dynamic where
the network allows it: every export is run in onnxruntime and compared with PyTorch on two sizes;
where a dynamic graph fails or disagrees, the export falls back to a fixed square tile (``--tile``),
which is written into the file's metadata. Heights and widths must be multiples of
``size_multiple`` (metadata): the network's own padding is not in the graph (restoregen's ONNX
runner, :mod:`.onnx_runtime`, pads as the PyTorch network does).

safetensors: the self-describing file the bundled model uses (weights plus ``format``, ``arch``,
``kwargs``, ``scale`` metadata; :mod:`restoregen.train.export`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: `restoregen --help` stays quick
    from torch import Tensor, nn

__all__ = ["OPSET", "OnnxExport", "configure", "export_onnx", "export_safetensors", "run"]

OPSET = 18  # what torch's exporter targets by default here; onnxruntime runs opset 18 since 1.14
FP32_TOLERANCE = 1e-3  # above this, a graph computes something else than the network (not rounding)
FP16_TOLERANCE = 5e-2  # a float16 graph against the float32 network, on outputs in [0, 1]


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and how it checked it."""

    path: Path
    opset: int
    dtype: str  # float32 or float16
    dynamic: bool  # height and width dynamic (else fixed_size)
    dynamic_batch: bool
    fixed_size: int  # 0 when dynamic
    size_multiple: int
    checks: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # (input shape, max |ort - torch|)
    notes: list[str] = field(default_factory=list)  # why a dynamic attempt was given up

    def describe(self) -> str:
        sizes = (f"dynamic batch, height and width (multiples of {self.size_multiple})" if self.dynamic
                 else f"fixed {self.fixed_size}x{self.fixed_size} tiles"
                 + (", dynamic batch" if self.dynamic_batch else ", batch 1"))
        checks = "; ".join(f"{'x'.join(map(str, shape))}: max |diff| {diff:.2e}" for shape, diff in self.checks)
        return f"{self.path} (ONNX opset {self.opset}, {self.dtype}, {sizes}); onnxruntime vs PyTorch: {checks}"


def _first_multiple(value: int, multiple: int) -> int:
    return max(math.ceil(value / multiple), 1) * multiple


def _ort_run(path: Path, x: Tensor) -> Tensor:
    import numpy as np
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    feed = x.numpy().astype(np.float16 if graph_input.type == "tensor(float16)" else np.float32)
    return torch.from_numpy(session.run(None, {graph_input.name: feed})[0].astype(np.float32))


def _trace(graph: nn.Module, example: Tensor, path: Path, dynamic: dict[int, Any], opset: int) -> None:
    """``torch.onnx.export`` with the exporter's chatter captured (it is repeated in errors)."""
    import torch

    from ..attention import attention_backend

    with (attention_backend("math"), torch.no_grad(), warnings.catch_warnings(),
          contextlib.redirect_stdout(io.StringIO())):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (example,), dynamo=True, opset_version=opset, input_names=["input"],
                                    output_names=["output"], dynamic_shapes=(dynamic,) if dynamic else None,
                                    external_data=False)
    program.save(str(path))


def _attempt(graph: nn.Module, reference: nn.Module, path: Path, example: Tensor, checks: list[Tensor],
             dynamic: dict[int, Any], opset: int, tolerance: float) -> list[tuple[tuple[int, ...], float]]:
    """Export, then run every check input in onnxruntime and PyTorch; raises ValueError on a mismatch."""
    import torch

    _trace(graph, example, path, dynamic, opset)
    results = []
    for x in checks:
        with torch.inference_mode():
            expected = reference(x.float())
        try:
            got = _ort_run(path, x)
        except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types
            raise ValueError(f"onnxruntime failed on {tuple(x.shape)}: {str(error).splitlines()[0][:200]}") from None
        if got.shape != expected.shape:
            raise ValueError(f"output {tuple(got.shape)} on {tuple(x.shape)}, expected {tuple(expected.shape)}")
        diff = (got - expected).abs().max().item()
        if not math.isfinite(diff) or diff > tolerance:
            raise ValueError(f"onnxruntime differs from PyTorch by {diff:.3g} on {tuple(x.shape)}")
        results.append((tuple(x.shape), diff))
    return results


def _reason(error: BaseException) -> str:
    """One line on why an attempt failed: the exporter's own cause where it names one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    causes = [line for line in lines if re.search(r"Error\b|violated|specialized", line)]
    return f"{type(error).__name__}: {(causes or lines)[-1][:300]}"


def _metadata(info, result: OnnxExport, source: str) -> dict[str, str]:
    return {
        "format": "restoregen", "arch": info.arch, "subtype": info.subtype, "implementation": info.implementation,
        "scale": str(info.scale), "in_channels": str(info.in_channels),
        "out_channels": str(info.out_channels or info.in_channels), "size_multiple": str(result.size_multiple),
        "fixed_size": str(result.fixed_size), "dtype": result.dtype, "opset": str(result.opset),
        "dynamic": "batch,height,width" if result.dynamic else ("batch" if result.dynamic_batch else ""),
        "source": source,
    }


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(graph, str(tmp))
    tmp.replace(path)


def export_onnx(model: nn.Module, info, out: str | Path, *, half: bool = False, tile: int = 256,
                opset: int = OPSET, seed: int = 0) -> OnnxExport:
    """Write ``model`` (as loaded by :func:`~.loading.load_model`) to ``out`` as ONNX and check it in
    onnxruntime against PyTorch on two input sizes (see the module docstring). ``half``: a float16
    graph (refused where the network does not support float16)."""
    import torch

    out = Path(out)
    if info.implementation == "onnxruntime":
        raise ValueError(f"{info.source} is an ONNX graph already")
    if half and torch.float16 in info.refused:
        raise ValueError(f"{info.arch} does not support float16 (spandrel's descriptor says so); export float32")
    multiple = max(info.size_multiple, 1)
    minimum = _first_multiple(max(info.min_size, 64), multiple)
    channels = info.in_channels
    generator = torch.Generator().manual_seed(seed)

    def image(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator)

    reference = model.eval().float()
    graph = copy.deepcopy(reference).half() if half else reference
    dtype = torch.float16 if half else torch.float32
    tolerance = FP16_TOLERANCE if half else FP32_TOLERANCE
    dyn = torch.export.Dim.DYNAMIC
    side = minimum + multiple  # not 64: networks that cache masks for img_size (64) would specialise to it
    fixed = _first_multiple(max(tile, side), multiple)
    attempts = [  # (what, dynamic axes, example, check inputs)
        ("dynamic", {0: dyn, 2: dyn, 3: dyn}, image(2, channels, side, side),
         [image(1, channels, side, side), image(1, channels, side + multiple, side + 2 * multiple)]),
        ("fixed tile, dynamic batch", {0: dyn}, image(2, channels, fixed, fixed),
         [image(1, channels, fixed, fixed), image(2, channels, fixed, fixed)]),
        ("fixed tile and batch", {}, image(1, channels, fixed, fixed), [image(1, channels, fixed, fixed)]),
    ]
    notes = []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    for what, dynamic, example, checks in attempts:
        try:
            results = _attempt(graph, reference, tmp, example.to(dtype), [x.to(dtype) for x in checks], dynamic,
                               opset, tolerance)
        except Exception as error:  # noqa: BLE001 - the exporter raises many types; the next attempt may work
            notes.append(f"{what}: {_reason(error)}")
            continue
        is_dynamic = 2 in dynamic
        result = OnnxExport(out, opset, "float16" if half else "float32", is_dynamic, 0 in dynamic,
                            0 if is_dynamic else fixed, multiple, results, notes)
        _write_metadata(tmp, _metadata(info, result, info.source))
        tmp.replace(out)
        return result
    tmp.unlink(missing_ok=True)
    raise ValueError(f"{info.arch} could not be exported to ONNX: " + " | ".join(notes))


def export_safetensors(model: nn.Module, info, out: str | Path) -> dict[str, str]:
    """The self-describing safetensors file of :mod:`restoregen.train.export`: the weights with
    ``format``, ``arch``, ``kwargs``, ``scale`` (and ``implementation``, ``subtype``) metadata.
    restoregen's networks are rebuilt from ``arch`` and ``kwargs``; spandrel's from the tensors."""
    from ..train.export import export_state

    if info.implementation == "onnxruntime":
        raise ValueError(f"{info.source} is an ONNX graph; it has no PyTorch weights to write")
    net = model.net if info.implementation == "spandrel" else model  # spandrel: the keys it detects
    kwargs = json.loads(json.dumps(info.kwargs, default=str))
    network = {"type": info.arch, **kwargs}
    if info.implementation != "restoregen":
        network.setdefault("upscale", info.scale)
    return export_state(net.state_dict(), network, out, implementation=info.implementation, subtype=info.subtype,
                        source=info.source)


EPILOG = """\
examples:
  restoregen export --model HAT-S_SRx4.pth --format onnx hat-s_x4.onnx
  restoregen export --model 4x-UltraSharp.pth --format onnx --half ultrasharp_fp16.onnx
  restoregen export --model RealESRGAN_x4plus.pth --format safetensors realesrgan_x4plus.safetensors
  restoregen upscale photos/ out/ --model hat-s_x4.onnx          (runs in onnxruntime)

ONNX graphs take sides that are multiples of the network's size multiple (in the file's metadata);
restoregen pads as the PyTorch network does. Needs onnx and onnxruntime: pip install 'restoregen[onnx]'.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from .command import _model_arg

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("output", metavar="OUT", help="the file to write (.onnx or .safetensors)")
    parser.add_argument("--model", metavar="PATH", help="checkpoint (.pth/.pt/.ckpt/.safetensors, read safely); "
                        "default: the bundled x4 model")
    parser.add_argument("--format", choices=("onnx", "safetensors"), help="default: from OUT's extension")
    parser.add_argument("--half", action="store_true", help="ONNX: a float16 graph (where the network supports it)")
    parser.add_argument("--tile", type=int, default=256, metavar="N",
                        help="ONNX: the fixed tile side used where a dynamic graph is not possible (default 256)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--model-arg", metavar="KEY=VALUE", type=_model_arg, action="append", default=[],
                        help="override a constructor argument of restoregen's networks, e.g. img_range=255.")
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"restoregen export: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from .loading import CheckpointError, default_model_path, load_model

    output = Path(args.output)
    fmt = args.format or {".onnx": "onnx", ".safetensors": "safetensors"}.get(output.suffix.lower())
    if fmt is None:
        return _error(f"cannot tell the format from {output.name}; pass --format onnx or --format safetensors")
    model_path = args.model or default_model_path()
    if model_path is None:
        return _error("no --model given, and this installation lacks the bundled default model")
    try:
        model, info = load_model(model_path, **dict(args.model_arg))
    except CheckpointError as error:
        return _error(str(error))
    print(f"{info.describe()}; {info.parameters:,} parameters")
    start = time.perf_counter()
    try:
        if fmt == "safetensors":
            metadata = export_safetensors(model, info, output)
            print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB): {metadata['arch']} x{info.scale}, "
                  f"self-describing (format, arch, kwargs, scale in its metadata)")
            return 0
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return _error("ONNX export needs onnx and onnxruntime: pip install 'restoregen[onnx]'")
        result = export_onnx(model, info, output, half=args.half, tile=args.tile, opset=args.opset)
    except (ValueError, OSError) as error:
        return _error(str(error))
    print(f"wrote {result.describe()} in {time.perf_counter() - start:.1f} s")
    if not result.dynamic:
        print(f"note: the graph takes {result.fixed_size}x{result.fixed_size} inputs only (written into its metadata "
              f"as fixed_size); a dynamic graph was not possible: {' | '.join(result.notes)}")
    return 0

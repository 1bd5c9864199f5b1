"""``load_model``: a checkpoint in, a ready network out.

Files are read without running code (:func:`restoregen.checkpoints.read_checkpoint`: safetensors,
or ``torch.load(weights_only=True)`` after refusing pickles that name code). Training wrappers
(``params_ema``, ``params``, ``g_ema``, ``state_dict``, ...) are removed
(:func:`restoregen.checkpoints.unwrap_state_dict`, the one checkpoint unwrapper). restoregen's
own image-to-image networks are detected from the tensors (:func:`restoregen.archs.detect`) and
built by restoregen, as their registrations describe them; every other architecture spandrel
recognises is built by spandrel (:mod:`.foreign`) from the same tensors; ``.onnx`` files run in
onnxruntime (:mod:`.onnx_runtime`).
:func:`load_model` is the one place that decides which.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..archs import IMAGE_TO_IMAGE, UnknownArchitecture, build, detect, list_archs, network
from ..checkpoints import CheckpointError, key_variants, read_checkpoint, unwrap_state_dict

__all__ = ["CheckpointError", "ModelInfo", "default_model_path", "describe_keys", "key_variants", "load_model",
           "network_info", "read_state_dict"]


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know to run a loaded network."""

    arch: str  # official class name
    scale: int  # output size = scale * input size
    in_channels: int  # the output has the same channels
    size_multiple: int  # the network pads inputs to this multiple; tiles of this multiple waste nothing
    dtypes: tuple[torch.dtype, ...]  # dtypes it runs reliably in (float16 overflows in Swin attention)
    kwargs: dict[str, Any] = field(default_factory=dict, repr=False)  # the official constructor arguments used
    source: str = "<state dict>"
    implementation: str = "restoregen"  # what runs it: restoregen, spandrel or onnxruntime
    subtype: str = ""  # e.g. spandrel's tags ("64nf, 23nb")
    out_channels: int = 0  # 0: as in_channels
    parameters: int = 0
    refused: tuple[torch.dtype, ...] = ()  # dtypes it must not run in, even on request
    fixed_size: int = 0  # > 0: it takes only square tiles of exactly this side (a static ONNX graph)
    min_size: int = 0  # smaller inputs are padded up to this side by the network's wrapper
    width: int = 64  # feature channels per pixel: the tiler's memory estimate on the CPU

    def describe(self) -> str:
        name = f"{self.arch} ({self.subtype})" if self.subtype else self.arch
        via = "" if self.implementation == "restoregen" else f" via {self.implementation}"
        return f"{name} x{self.scale} ({self.in_channels} channels) from {self.source}{via}"


def default_model_path() -> Path | None:
    """The bundled default model (restoregen-x4), or None if this installation lacks it."""
    from .bundled import DEFAULT_FOR_SCALE, DEFAULT_SCALE, bundled_path

    return bundled_path(DEFAULT_FOR_SCALE[DEFAULT_SCALE])


def describe_keys(state_dict: Mapping[str, Tensor], shown: int = 4) -> str:
    """What a state dict looks like: how many tensors and values, and its first keys with shapes."""
    values = sum(v.numel() for v in state_dict.values())
    keys = [f"{k} {list(v.shape)}" for k, v in list(state_dict.items())[:shown]]
    more = f", ... (+{len(state_dict) - shown} more)" if len(state_dict) > shown else ""
    return f"{len(state_dict)} tensors, {values:,} values; keys as stored: {', '.join(keys)}{more}"


def read_stored(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The unwrapped tensors of a file or mapping (keys as stored) and the safetensors metadata."""
    if isinstance(source, Mapping):
        return unwrap_state_dict(source)[0], {}
    path = Path(source)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise CheckpointError(f"{path}: the file is empty")
        checkpoint = read_checkpoint(path)
        return unwrap_state_dict(checkpoint.data)[0], checkpoint.metadata
    except CheckpointError as error:
        message = str(error)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Tensor]:
    """The bare state dict in a checkpoint file or an (already loaded, possibly wrapped) mapping,
    with every common wrapper prefix removed."""
    return key_variants(read_stored(source)[0])[-1]


def _load_weights(model: nn.Module, state_dict: Mapping[str, Tensor], arch: str) -> None:
    """Strict loading, except that buffers the network computes itself (index tables, masks) may be absent."""
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches, one per line after a header line
        lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
        raise CheckpointError(f"the weights do not fit the detected {arch}: {'; '.join(lines)}") from None
    buffers = {name for name, _ in model.named_buffers()}
    missing = [k for k in result.missing_keys if k not in buffers]
    if missing or result.unexpected_keys:
        details = []
        if missing:
            details.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if result.unexpected_keys:
            details.append(f"unexpected {len(result.unexpected_keys)} (e.g. {', '.join(result.unexpected_keys[:3])})")
        raise CheckpointError(f"the weights do not fit the detected {arch}: {'; '.join(details)}")


def _restoregen_arch(state_dict: dict[str, Tensor], metadata: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The restoregen network of a state dict: from the metadata of a restoregen-exported file, else
    detected from the tensors (raises :class:`UnknownArchitecture`)."""
    if metadata.get("format") == "restoregen" and metadata.get("arch") in list_archs() and "kwargs" in metadata:
        return metadata["arch"], json.loads(metadata["kwargs"])
    return detect(state_dict)


def load_model(source: str | os.PathLike | Mapping[str, Any], device: torch.device | str = "cpu", *,
               allow_spandrel: bool | None = None, **overrides: Any) -> tuple[nn.Module, ModelInfo]:
    """Load a checkpoint: ``(network in eval mode, ModelInfo)``.

    ``source`` is a ``.pth``/``.pt``/``.ckpt``/``.safetensors`` file, a state dict (wrapped or not)
    or an ``.onnx`` file. restoregen's own image-to-image networks (and restoregen-exported files)
    are built by restoregen; any other architecture spandrel recognises by spandrel (unless
    ``allow_spandrel`` is False, or ``$RESTOREGEN_SPANDREL=0``); ONNX files run in onnxruntime. ``overrides`` replace
    detected constructor arguments of restoregen's networks, e.g. ``img_range=255.0`` or
    ``tlc_kernel=64`` (``restoregen.archs.network(arch).unrecoverable`` lists those that cannot be
    read from the weights). Raises :class:`CheckpointError` with the reason on any problem.
    """
    name = "<state dict>" if isinstance(source, Mapping) else str(source)
    shown = name if isinstance(source, Mapping) else Path(name).name
    if not isinstance(source, Mapping) and Path(name).suffix.lower() == ".onnx":
        from .onnx_runtime import load_onnx

        if overrides:
            raise CheckpointError(f"{name}: an ONNX graph has its arguments built in; cannot override "
                                  f"{', '.join(overrides)}")
        model, info = load_onnx(name, device)
        return model, info
    stored, metadata = read_stored(source)
    state_dict = key_variants(stored)[-1]
    try:
        arch, kwargs = _restoregen_arch(state_dict, metadata)
    except UnknownArchitecture as error:
        from .foreign import load_foreign, spandrel_allowed

        allowed = spandrel_allowed() if allow_spandrel is None else allow_spandrel
        reason = str(error) if error.family else ""  # keys that looked like a restoregen network
        model, info = load_foreign(stored, name, allowed=allowed, native_error=reason, overrides=overrides)
        return model.to(device), replace(info, source=shown)
    kwargs.update(overrides)
    if arch not in list_archs():
        raise CheckpointError(f"{name}: detected {arch}, which this restoregen build does not provide "
                              f"(available: {', '.join(list_archs())})")
    if network(arch).task != IMAGE_TO_IMAGE:
        raise CheckpointError(f"{name}: the weights are a {arch} ({network(arch).task}), not an image-to-image "
                              "network (see `restoregen sample`)")
    try:
        model = build(arch, **kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{name}: cannot build the detected {arch}: {error}") from None
    try:
        _load_weights(model, state_dict, arch)
    except CheckpointError as error:
        raise CheckpointError(f"{name}: {error}") from None
    model.eval().requires_grad_(False).to(device)
    return model, network_info(arch, model, kwargs, source=shown)


def network_info(arch: str, model: nn.Module, kwargs: dict[str, Any], **fields: Any) -> ModelInfo:
    """The :class:`ModelInfo` of restoregen network ``arch`` built from ``kwargs``, as its registration
    describes it; ``fields`` set the others (e.g. ``source``, ``dtypes``)."""
    described = network(arch)
    return ModelInfo(**{
        "arch": arch,
        "scale": described.scale(model),
        "in_channels": described.in_channels(model),
        "size_multiple": described.input_multiple(model),
        "dtypes": (torch.float32, torch.bfloat16),
        "kwargs": kwargs,
        "parameters": sum(p.numel() for p in model.parameters()),
        "width": described.width(model),
        **fields,
    })

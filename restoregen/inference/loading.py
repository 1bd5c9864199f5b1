"""``load_model``: any official HAT / DRCT / DLGSANet checkpoint in, a ready network out.

Files are read without running code (:func:`restoregen.checkpoints.read_checkpoint`: safetensors,
or ``torch.load(weights_only=True)`` after refusing pickles that name code). Training wrappers
(``params_ema``, ``params``, ``g_ema``, ``state_dict``, ...) and ``module.`` prefixes are removed,
the architecture and its arguments are detected from the tensors (:func:`restoregen.archs.detect`),
and the weights are loaded strictly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..archs import UnknownArchitecture, build, detect, list_archs
from ..checkpoints import CheckpointError, read_checkpoint

__all__ = ["CheckpointError", "ModelInfo", "default_model_path", "load_model", "read_state_dict"]

# Wrappers that training code puts around a state dict, in order of preference (EMA weights first).
WRAPPER_KEYS = ("params_ema", "params", "g_ema", "state_dict", "model", "net_g", "generator")
# Prefixes added by DataParallel/DDP (module.), torch.compile (_orig_mod.) and Lightning-style wrappers.
STRIPPED_PREFIXES = ("module.", "_orig_mod.", "model.", "net_g.")
# The bundled default model, in restoregen/weights/ (a link to the repository's weights/ folder).
DEFAULT_MODEL: str | None = "restoregen_default_x4.safetensors"


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

    def describe(self) -> str:
        return f"{self.arch} x{self.scale} ({self.in_channels} channels) from {self.source}"


def default_model_path() -> Path | None:
    """The bundled default model, or None if this installation lacks it."""
    if DEFAULT_MODEL is None:
        return None
    path = Path(str(resources.files("restoregen") / "weights" / DEFAULT_MODEL))
    return path if path.is_file() else None


def _read_file(path: Path) -> Any:
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    return read_checkpoint(path).data


def _unwrap(obj: Any) -> dict[str, Tensor]:
    """The tensor mapping inside training wrappers, with wrapper prefixes removed."""
    while isinstance(obj, Mapping):
        wrapped = next((obj[key] for key in WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
        if wrapped is None:
            break
        obj = wrapped
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state dict (a mapping of names to tensors), found {type(obj).__name__}")
    state_dict = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state_dict:
        raise CheckpointError(f"no tensors found (top-level keys: {', '.join(map(str, list(obj)[:8]))})")
    stripped = True
    while stripped:
        stripped = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                stripped = True
    return state_dict


def read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Tensor]:
    """The bare state dict in a checkpoint file or an (already loaded, possibly wrapped) mapping."""
    if isinstance(source, Mapping):
        return _unwrap(source)
    path = Path(source)
    try:
        return _unwrap(_read_file(path))
    except CheckpointError as error:
        message = str(error)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None


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


def load_model(source: str | os.PathLike | Mapping[str, Any], device: torch.device | str = "cpu",
               **overrides: Any) -> tuple[nn.Module, ModelInfo]:
    """Load a HAT, DRCT or DLGSANet checkpoint: ``(network in eval mode, ModelInfo)``.

    ``source`` is a ``.pth``/``.pt``/``.ckpt``/``.safetensors`` file or a state dict (wrapped or not).
    ``overrides`` replace detected constructor arguments, e.g. ``img_range=255.0`` or
    ``tlc_kernel=64`` (see :data:`restoregen.archs.detect.UNRECOVERABLE` for those that cannot be
    read from the weights). Raises :class:`CheckpointError` with the reason on any problem.
    """
    name = "<state dict>" if isinstance(source, Mapping) else str(source)
    state_dict = read_state_dict(source)
    try:
        arch, kwargs = detect(state_dict)
    except UnknownArchitecture as error:
        raise CheckpointError(f"{name}: {error}") from None
    kwargs.update(overrides)
    if arch not in list_archs():
        raise CheckpointError(f"{name}: detected {arch}, which this restoregen build does not provide "
                              f"(available: {', '.join(list_archs())})")
    try:
        model = build(arch, **kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{name}: cannot build the detected {arch}: {error}") from None
    try:
        _load_weights(model, state_dict, arch)
    except CheckpointError as error:
        raise CheckpointError(f"{name}: {error}") from None
    model.eval().requires_grad_(False).to(device)
    info = ModelInfo(
        arch=arch,
        scale=int(kwargs.get("upscale", 1)),
        in_channels=int(kwargs["in_chans"]),
        size_multiple=int(getattr(model, "size_multiple", 1)),
        dtypes=(torch.float32, torch.bfloat16),
        kwargs=kwargs,
        source=Path(name).name if not isinstance(source, Mapping) else name,
    )
    return model, info

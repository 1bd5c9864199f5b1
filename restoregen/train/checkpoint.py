"""Checkpoints in BasicSR's layout, written atomically.

``experiments/<name>/models/net_<label>_<iter>.pth`` holds a network as ``{'params': ...}`` plus
``'params_ema'`` when it has an EMA: the files the official repositories and ``restoregen
upscale`` load. ``experiments/<name>/training_states/<iter>.state`` holds the rest (iteration,
optimizers, schedules, data position, RNG states, best metrics). Every file is written to a
temporary name, synced and renamed; the state is written last, so a checkpoint is complete
exactly when its state file exists and its model files load.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch

log = logging.getLogger("restoregen.train")


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj, path: str | os.PathLike) -> None:
    atomic_write(path, lambda file: torch.save(obj, file))


def clean_state_dict(state: dict) -> dict:
    """CPU tensors without DDP's ``module.`` prefix."""
    return {k.removeprefix("module."): v.detach().cpu() for k, v in state.items()}


def load_weights(path: str | os.PathLike) -> dict:
    """A weights file (``.pth`` via ``weights_only`` or ``.safetensors``) as a dict. Pickles are
    read by :func:`restoregen.checkpoints.read_checkpoint`, so official StyleSwin/StyleGAN2
    ``.pt`` files (an ``argparse.Namespace`` beside the weights) load without running code."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return {k: v.clone() for k, v in load_file(path).items()}
    from ..checkpoints import read_checkpoint

    return read_checkpoint(path).data


def network_state(path: str | os.PathLike, param_key: str | None = "params") -> tuple[dict, str | None]:
    """The state dict under ``param_key`` of a weights file (BasicSR's rule: fall back to
    ``params`` when the key is missing; a file without such keys is the state dict itself). The
    EMA key ``params_ema`` falls back to ``g_ema`` first, the EMA generator of official GAN files."""
    data = load_weights(path)
    if param_key == "params_ema" and param_key not in data and "g_ema" in data:  # official StyleSwin/StyleGAN2
        param_key = "g_ema"
    if param_key is not None and param_key not in data and "params" in data:
        param_key = "params"
    if param_key is not None and param_key in data:
        data = data[param_key]
    elif any(isinstance(v, dict) for v in data.values()):
        raise KeyError(f"{path}: no {param_key!r} in the file (keys: {', '.join(sorted(data))})")
    else:
        param_key = None
    return {k.removeprefix("module."): v for k, v in data.items()}, param_key


def state_path(root: str | os.PathLike, iteration: int) -> Path:
    return Path(root) / "training_states" / f"{iteration}.state"


def model_path(root: str | os.PathLike, label: str, iteration: int | str) -> Path:
    return Path(root) / "models" / f"net_{label}_{iteration}.pth"


def find_latest(root: str | os.PathLike, labels: list[str]) -> tuple[int, dict] | None:
    """The newest complete checkpoint under experiment folder ``root``: (iteration, state)."""
    folder = Path(root) / "training_states"
    if not folder.is_dir():
        return None
    iterations = sorted((int(p.stem) for p in folder.glob("*.state") if p.stem.isdigit()), reverse=True)
    for iteration in iterations:
        missing = [label for label in labels if not model_path(root, label, iteration).is_file()]
        if missing:
            log.warning("skipping checkpoint %d: model file net_%s_%d.pth is missing", iteration, missing[0], iteration)
            continue
        try:
            return iteration, torch.load(state_path(root, iteration), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged file: try the one before
            log.warning("skipping checkpoint %d: its state does not load (%s)", iteration, error)
    return None

"""Checkpoints in BasicSR's layout, written atomically.

``experiments/<name>/models/net_<label>_<iter>.pth`` holds a network as ``{'params': ...}`` plus
``'params_ema'`` when it has an EMA: the files the official repositories and ``restoregen
upscale`` load. ``experiments/<name>/training_states/<iter>.state`` holds the rest (iteration,
optimizers, schedules, data position, RNG states, best metrics). Every file is written to a
temporary name, synced and renamed (:func:`restoregen.fileio.atomic_write`); the state is written
last, so a checkpoint is complete exactly when its state file exists and its model files load.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..checkpoints import CheckpointError, unwrap_state_dict
from ..fileio import atomic_write

log = logging.getLogger("restoregen.train")

__all__ = ["atomic_save", "atomic_write", "clean_state_dict", "find_latest", "load_weights", "model_path",
           "network_state", "state_path"]


def atomic_save(obj, path: str | os.PathLike) -> None:
    atomic_write(path, lambda file: torch.save(obj, file))


def clean_state_dict(state: dict) -> dict:
    """CPU tensors without DDP's ``module.`` prefix."""
    return {k.removeprefix("module."): v.detach().cpu() for k, v in state.items()}


def load_weights(path: str | os.PathLike) -> dict:
    """A weights file (``.pth`` via ``weights_only`` or ``.safetensors``) as a dict; a file that
    cannot be read raises :class:`~restoregen.checkpoints.CheckpointError`. Pickles are
    read by :func:`restoregen.checkpoints.read_checkpoint`, so official StyleSwin/StyleGAN2
    ``.pt`` files (an ``argparse.Namespace`` beside the weights) load without running code."""
    from ..checkpoints import read_checkpoint

    return read_checkpoint(path).data


def network_state(path: str | os.PathLike, param_key: str | None = "params") -> tuple[dict, str | None]:
    """The state dict under ``param_key`` of a weights file and the key used, by BasicSR's rules
    (:func:`restoregen.checkpoints.unwrap_state_dict`: ``params_ema`` falls back to ``g_ema``, any
    key to ``params``; a file without such keys is the state dict itself; None: the usual wrappers
    are looked for), DDP's ``module.`` prefix removed. Raises
    :class:`~restoregen.checkpoints.CheckpointError` naming the file."""
    data = load_weights(path)
    try:
        state, used = unwrap_state_dict(data, param_key)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return {k.removeprefix("module."): v for k, v in state.items()}, used


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

"""Trained weights as a self-describing safetensors file: the state dict plus metadata naming the
architecture and its constructor arguments, so a reader can rebuild the network without the
option file::

    metadata = {"format": "restoregen", "arch": "HAT", "kwargs": "<JSON of network_g without type>",
                "scale": "4", ...}
    net = restoregen.archs.build(metadata["arch"], **json.loads(metadata["kwargs"]))
    net.load_state_dict(safetensors.torch.load_file(path), strict=True)
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from .checkpoint import atomic_write, network_state


def export_weights(network: dict, checkpoint: str | Path, out: str | Path, *, param_key: str = "params_ema",
                   **metadata: str) -> dict[str, str]:
    """Write the ``param_key`` weights of ``checkpoint`` (a BasicSR ``.pth``) for the network of
    option section ``network`` (``network_g``) to ``out``; returns the metadata written."""
    state, used = network_state(checkpoint, param_key)
    return export_state(state, network, out, param_key=str(used), **metadata)


def export_state(state: dict, network: dict, out: str | Path, **metadata: str) -> dict[str, str]:
    """Write state dict ``state`` of the network of option section ``network`` to ``out`` with the
    metadata above; returns the metadata written."""
    from safetensors.torch import save

    kwargs = {k: v for k, v in network.items() if k != "type"}
    info = {"format": "restoregen", "arch": network["type"], "kwargs": json.dumps(kwargs, sort_keys=True),
            "scale": str(kwargs.get("upscale", "")), **metadata}
    data = save({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, metadata=info)
    atomic_write(out, lambda file: file.write(data))
    return info


def load_exported(path: str | Path) -> tuple[nn.Module, dict[str, str]]:
    """The network of an exported file (strictly loaded, in eval mode) and its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..archs import build

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != "restoregen":
        raise ValueError(f"{path}: not a restoregen weights file (no 'format: restoregen' metadata)")
    net = build(metadata["arch"], **json.loads(metadata["kwargs"]))
    net.load_state_dict({k: v.clone() for k, v in load_file(str(path)).items()}, strict=True)
    return net.eval(), metadata

"""Fixtures for the inference tests: a tiny random HAT checkpoint, and skipping unregistered networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from restoregen.archs import build, list_archs

TINY_HAT = dict(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, compress_ratio=3,
                squeeze_factor=4, mlp_ratio=1, upscale=2, upsampler="pixelshuffle")


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HAT x2 with random weights, small enough to upscale a folder in a second."""
    torch.manual_seed(0)
    model = build("HAT", **TINY_HAT)
    path = tmp_path_factory.mktemp("weights") / "tiny_hat_x2.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


@pytest.fixture
def require_arch():
    """``require_arch(name)`` skips the test while network ``name`` is not registered."""

    def require(arch: str) -> None:
        if arch not in list_archs():
            pytest.skip(f"{arch} is not registered yet (restoregen.archs.list_archs() = {list_archs()})")

    return require

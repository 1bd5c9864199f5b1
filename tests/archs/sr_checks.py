"""Checks shared by the super-resolution network tests (HAT, DRCT, DLGSANet)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from restoregen.archs import build
from restoregen.attention import attention_backend
from tests.reference_data import case_dirs, load_case, params, sr_tolerance


def case_fixture(family: str, arch: str):
    """A module-scoped fixture ``<family>_case`` giving (config, weights, io) for every case of a family."""

    @pytest.fixture(scope="module", params=params(case_dirs(family)), name=f"{family}_case")
    def case(request):
        config, weights, io = load_case(request.param)
        assert config["arch"] == arch
        return config, weights, io

    return case


def assert_fixture_parity(case: tuple[dict, dict, dict], backend: str,
                          prepare: Callable[[nn.Module], None] | None = None) -> None:
    """Strict load, parameter count, and output within the SR tolerance (our forward pads by itself)."""
    config, weights, io = case
    assert config["procedure"] in ("forward", "pad_wrapper")
    model = build(config["arch"], **config["kwargs"]).eval()
    model.load_state_dict(weights, strict=True)
    assert sum(p.numel() for p in model.parameters()) == config["num_params"]
    if prepare is not None:
        prepare(model)
    with attention_backend(backend), torch.no_grad():
        out = model(io["input"])
    assert out.shape == io["output"].shape
    assert (out - io["output"]).abs().max().item() <= sr_tolerance(io["output"])


def assert_released_layout(arch: str, path: Path) -> None:
    """Keys, shapes, buffer dtypes and parameter count of a released checkpoint (built on meta)."""
    spec = json.loads(path.read_text())
    with torch.device("meta"):
        model = build(arch, **spec["kwargs"])
    state = model.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, s) for k, s in spec["state_dict"]]
    parameters = dict(model.named_parameters())
    buffers = {k: str(v.dtype).removeprefix("torch.") for k, v in state.items() if k not in parameters}
    assert buffers == {name: dtype for name, _, dtype in spec["buffers_in_state_dict"]}
    assert all(p.dtype == torch.float32 for p in parameters.values())
    assert sum(p.numel() for p in parameters.values()) == spec["num_params"]


def tiny_model(arch: str, kwargs: dict, **overrides) -> nn.Module:
    """``build(arch, **kwargs, **overrides)`` with N(0, 1) relative-position tables (index bugs then show)."""
    model = build(arch, **{**kwargs, **overrides})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name:
                p.normal_()
    return model


def forward_backward(model: nn.Module, x: torch.Tensor, backend: str):
    """Output and parameter gradients of ``mean(model(x)**2)`` under ``backend``."""
    model.zero_grad()
    with attention_backend(backend):
        out = model(x)
    out.square().mean().backward()
    return out.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_backend_matches_math(model: nn.Module, x: torch.Tensor, backend: str) -> torch.Tensor:
    """``backend`` gives the output and the gradients of ``math``; returns the output."""
    ref, ref_grads = forward_backward(model, x, "math")
    out, grads = forward_backward(model, x, backend)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    return out


def assert_checkpointing_keeps_gradients(plain: nn.Module, checkpointed: nn.Module, x: torch.Tensor) -> None:
    checkpointed.load_state_dict(plain.state_dict())
    for model in (plain, checkpointed):
        model(x).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)

"""The bundled default model: small, self-describing, and it upscales x4."""

from __future__ import annotations

import torch

from restoregen.train.export import load_exported
from tests.train.helpers import REPO

WEIGHTS = REPO / "weights" / "restoregen_default_x4.safetensors"


def test_default_weights_build_and_upscale():
    assert WEIGHTS.stat().st_size < 20 * 2**20
    net, meta = load_exported(WEIGHTS)
    assert meta["arch"] == "HAT" and meta["scale"] == "4"
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 21, 30))
    assert out.shape == (1, 3, 84, 120) and torch.isfinite(out).all()


def test_export_round_trip(tmp_path):
    from restoregen.archs import build
    from restoregen.train.export import export_weights

    kwargs = {"upscale": 2, "embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 8, "squeeze_factor": 4,
              "upsampler": "pixelshuffle"}
    torch.manual_seed(0)
    net = build("HAT", **kwargs)
    torch.save({"params": net.state_dict(), "params_ema": net.state_dict()}, tmp_path / "net_g_1.pth")
    export_weights({"type": "HAT", **kwargs}, tmp_path / "net_g_1.pth", tmp_path / "w.safetensors", note="test")
    loaded, meta = load_exported(tmp_path / "w.safetensors")
    assert meta["note"] == "test" and meta["param_key"] == "params_ema"
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(x), net.eval()(x))

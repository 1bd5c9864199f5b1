"""The bundled default model: small, self-describing, and it upscales x4."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(("depths", "drawn"), [
    ([1, 1], "layers.1.residual_group.blocks.0.attn.qkv.weight"),  # a new group
    ([3], "layers.0.residual_group.blocks.2.mlp.fc1.weight"),  # new blocks at the end of the group
    ([2, 1], "layers.0.residual_group.blocks.1.attn.qkv.weight"),  # both
])
def test_grow_hat_adds_groups_and_blocks_that_start_as_the_identity(depths, drawn, tmp_path, monkeypatch, capsys):
    from restoregen.archs import build
    from restoregen.train.export import export_weights
    from tests.scripts import load_script
    from tests.train.helpers import tiny_hat, tiny_options, write_options, write_photos

    grow_hat = load_script("grow_hat")
    small_kwargs = {k: v for k, v in tiny_hat().items() if k != "type"}
    torch.manual_seed(0)
    small = build("HAT", **small_kwargs)
    torch.save({"params": small.state_dict(), "params_ema": small.state_dict()}, tmp_path / "net_g_1.pth")
    export_weights(tiny_hat(), tmp_path / "net_g_1.pth", tmp_path / "small.safetensors")
    large_net = {**tiny_hat(), "depths": depths, "num_heads": [2] * len(depths)}
    options = write_options(tmp_path / "large.yml",
                            {**tiny_options(write_photos(tmp_path / "photos"), val=False), "network_g": large_net})
    argv = ["grow_hat", "-opt", str(options), "--source", str(tmp_path / "small.safetensors"),
            "--out", str(tmp_path / "large.pth")]
    monkeypatch.setattr("sys.argv", argv)
    assert grow_hat.main() == 0
    state = torch.load(tmp_path / "large.pth", weights_only=True)
    large = build("HAT", **{k: v for k, v in large_net.items() if k != "type"})
    large.load_state_dict(state["params_ema"], strict=True)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(large.eval()(x), small.eval()(x), rtol=0, atol=1e-6)
    assert state["params"][drawn].abs().sum() > 0  # drawn, not zero
    monkeypatch.setattr("sys.argv", [*argv[:3], "--source", str(tmp_path / "large.pth"), *argv[5:]])
    assert grow_hat.main() == 2
    assert "large.pth: not a self-describing restoregen .safetensors file" in capsys.readouterr().err
    write_options(options, {**tiny_options(write_photos(tmp_path / "photos"), val=False), "network_g": tiny_hat()})
    monkeypatch.setattr("sys.argv", argv)
    assert grow_hat.main() == 2
    assert f"network_g's depths {tiny_hat()['depths']} do not extend" in capsys.readouterr().err

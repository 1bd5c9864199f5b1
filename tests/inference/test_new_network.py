"""A network registered in a test, with nothing else changed, is detected, loaded and tiled like
restoregen's own (docs/adding-a-network.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from restoregen.archs import build, detect, family_names, register, unregister
from restoregen.attention.windows import pad_to_multiple
from restoregen.inference.loading import load_model
from restoregen.inference.tiling import Upscaler


class ThrowAwayDoubler(nn.Module):
    """x2 super-resolution: two 3x3 convolutions and a pixel shuffle, on inputs padded to ``window``."""

    def __init__(self, in_chans: int = 3, features: int = 8, window: int = 4) -> None:
        super().__init__()
        self.window = window
        self.doubler_head = nn.Conv2d(in_chans, features, 3, 1, 1)
        self.doubler_tail = nn.Conv2d(features, in_chans * 4, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        y = self.doubler_tail(F.relu(self.doubler_head(pad_to_multiple(x, self.window))))
        return F.pixel_shuffle(y, 2)[..., : 2 * height, : 2 * width]


def _recover(w) -> dict:
    features, in_chans = w.shape("doubler_head.weight")[:2]
    return {"in_chans": in_chans, "features": features, "window": 4}


@pytest.fixture
def registered():
    register(ThrowAwayDoubler, matches=lambda w: "doubler_head.weight" in w, recover=_recover,
             unrecoverable={"window": 4}, in_channels=lambda model: model.doubler_head.in_channels,
             scale=lambda model: 2, input_multiple=lambda model: model.window,
             width=lambda model: model.doubler_head.out_channels)
    yield
    unregister("ThrowAwayDoubler")


def test_a_registered_network_is_detected_loaded_and_tiled(registered, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("ThrowAwayDoubler", features=6)
    path = tmp_path / "doubler.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    assert detect(model.state_dict()) == ("ThrowAwayDoubler", {"in_chans": 3, "features": 6, "window": 4})
    assert "ThrowAwayDoubler" in family_names()  # help texts and messages name it

    loaded, info = load_model(path)
    assert (info.arch, info.scale, info.size_multiple, info.width) == ("ThrowAwayDoubler", 2, 4, 6)
    image = torch.rand(1, 3, 40, 36)
    tiled = Upscaler(loaded, info, tile=16, overlap=8)(image)
    with torch.inference_mode():
        whole = model.eval()(image)
    assert tiled.shape == (1, 3, 80, 72)
    assert torch.allclose(tiled, whole, atol=1e-5)


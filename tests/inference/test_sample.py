"""``restoregen sample`` on our checkpoints and official-layout StyleSwin checkpoints."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from restoregen.archs import build
from restoregen.cli import main

KWARGS = dict(size=16, style_dim=16, n_mlp=1, channels=[32, 32, 16])


def write_marker(path: str) -> None:
    Path(path).write_text("code ran")


class RunsCode:
    """Unpickling this would create the marker file, with ``os.system`` or with a function of its
    own module (which no deny-list names)."""

    def __init__(self, marker: Path, via_system: bool) -> None:
        self.marker, self.via_system = str(marker), via_system

    def __reduce__(self):
        if self.via_system:
            return os.system, (f"touch {self.marker}",)
        return write_marker, (self.marker,)


@pytest.fixture(scope="module")
def weights() -> dict:
    torch.manual_seed(0)
    g = build("StyleSwinGenerator", **KWARGS)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return g.state_dict()


def _official(path: Path, weights: dict, args: object | None = None) -> Path:
    d = build("StyleSwinDiscriminator", size=16, channels={4: 16, 8: 16, 16: 16}, sn=True)
    namespace = argparse.Namespace(size=16, style_dim=16, n_mlp=1, G_channel_multiplier=2, lr_mlp=0.01,
                                   enable_full_resolution=8, D_sn=True, path="/data")
    torch.save({"g": weights, "d": d.state_dict(), "g_ema": weights, "g_optim": {"state": {}},
                "args": namespace if args is None else args}, path)
    return path


def _sample(capsys, model: Path, out: Path, *extra: str) -> tuple[int, str]:
    rc = main(["sample", "--model", str(model), "--out", str(out), *extra])
    return rc, capsys.readouterr().err


def _images(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("0*.png"))]


def test_official_layout(tmp_path, capsys, weights):
    rc, err = _sample(capsys, _official(tmp_path / "official.pt", weights), tmp_path / "out",
                      "--n", "5", "--seed", "3", "--batch-size", "2")
    assert rc == 0, err
    images = _images(tmp_path / "out")
    assert len(images) == 5 and images[0].shape == (16, 16, 3) and images[0].dtype == np.uint8
    assert not np.array_equal(images[0], images[1])
    grid = np.asarray(Image.open(tmp_path / "out" / "grid.png"))
    assert grid.shape == (2 * 18 + 2, 3 * 18 + 2, 3)  # 5 images -> 2 rows of 3 tiles, 16 px + 2 px gaps
    assert np.array_equal(grid[2:18, 2:18], images[0])
    assert "using entry 'g_ema'" in err and "not needed for sampling: g, d, g_optim" in err


def test_our_checkpoints_match_and_do_not_depend_on_batch_size(tmp_path, capsys, weights):
    save_file(weights, tmp_path / "g.safetensors", metadata={"kwargs": json.dumps({"lr_mlp": 0.01})})
    torch.save({"params_ema": weights}, tmp_path / "g.pth")
    rc1, err = _sample(capsys, tmp_path / "g.safetensors", tmp_path / "a", "--n", "3", "--batch-size", "1")
    rc2, _ = _sample(capsys, tmp_path / "g.pth", tmp_path / "b", "--n", "3", "--batch-size", "3")
    rc3, _ = _sample(capsys, _official(tmp_path / "o.pt", weights), tmp_path / "c", "--n", "3")
    assert rc1 == rc2 == rc3 == 0, err
    a, b, c = _images(tmp_path / "a"), _images(tmp_path / "b"), _images(tmp_path / "c")
    assert all(np.array_equal(x, y) and np.array_equal(x, z) for x, y, z in zip(a, b, c, strict=True))


def test_truncation_zero_gives_the_average_image(tmp_path, capsys, weights):
    torch.save({"g_ema": weights}, tmp_path / "g.pth")
    rc, err = _sample(capsys, tmp_path / "g.pth", tmp_path / "t", "--n", "3", "--truncation", "0")
    assert rc == 0, err
    images = _images(tmp_path / "t")
    assert all(np.array_equal(images[0], image) for image in images[1:])


def test_checkpoint_that_runs_code_is_refused(tmp_path, capsys, weights):
    marker = tmp_path / "marker"
    model = _official(tmp_path / "evil.pt", weights, args=RunsCode(marker, via_system=True))
    rc, err = _sample(capsys, model, tmp_path / "out", "--n", "1")
    assert rc == 2 and "refused" in err and "system" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_unknown_code_is_skipped_and_reported(tmp_path, capsys, weights):
    marker = tmp_path / "marker"
    model = _official(tmp_path / "odd.pt", weights, args={"extra": RunsCode(marker, via_system=False)})
    rc, err = _sample(capsys, model, tmp_path / "out", "--n", "2")
    assert not marker.exists()
    assert rc == 0 and "skipped (not executed, not loaded)" in err and "write_marker" in err
    assert len(_images(tmp_path / "out")) == 2
    torch.save(RunsCode(marker, via_system=False), tmp_path / "bare.pt")  # nothing but the payload
    rc, err = _sample(capsys, tmp_path / "bare.pt", tmp_path / "out2", "--n", "1")
    assert rc == 2 and "not a dict of weights" in err and not marker.exists()


def test_user_errors(tmp_path, capsys, weights):
    rc, err = _sample(capsys, tmp_path / "missing.pt", tmp_path / "out")
    assert rc == 2 and "missing.pt: no such file" in err
    torch.save({"optimizer": {}}, tmp_path / "other.pth")
    rc, err = _sample(capsys, tmp_path / "other.pth", tmp_path / "out")
    assert rc == 2 and "no generator weights" in err
    torch.save({"g_ema": weights}, tmp_path / "g.pth")
    rc, err = _sample(capsys, tmp_path / "g.pth", tmp_path / "out", "--truncation", "-1")
    assert rc == 2 and "--truncation" in err


def test_generators_and_upscalers_are_told_apart(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    path = tmp_path / "g.safetensors"
    save_file({k: v.contiguous() for k, v in build("StyleSwinGenerator", **KWARGS).state_dict().items()}, path)
    from restoregen.checkpoints import CheckpointError
    from restoregen.inference.loading import load_model

    with pytest.raises(CheckpointError, match="g.safetensors: the weights are a StyleSwinGenerator .generator."):
        load_model(path)
    assert main(["sample", "--model", str(tiny_model_file), "--n", "1", "--out", str(tmp_path / "out")]) == 2
    assert "not a StyleSwin generator state dict: the weights are a HAT" in capsys.readouterr().err

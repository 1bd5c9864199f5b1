"""Bundled models by name and by scale (``--model restoregen-x2``, ``--scale 2``) and ``restoregen models``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restoregen.archs import build
from restoregen.cli import main
from restoregen.inference import bundled
from restoregen.inference.bundled import BUNDLED, BundledModelError, resolve_model_argument
from tests.scripts import load_script

TINY_HAT = dict(in_chans=3, img_size=8, window_size=4, compress_ratio=3, squeeze_factor=4, conv_scale=0.01,
                overlap_ratio=0.5, img_range=1.0, depths=[1], embed_dim=12, num_heads=[2], mlp_ratio=2,
                upsampler="pixelshuffle", resi_connection="1conv")


def _export(path: Path, scale: int) -> None:
    """A tiny random HAT written as a self-describing bundled file."""
    from safetensors.torch import save_file

    torch.manual_seed(scale)
    kwargs = {**TINY_HAT, "upscale": scale}
    net = build("HAT", **kwargs)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"format": "restoregen", "arch": "HAT", "kwargs": json.dumps(kwargs), "scale": str(scale)})


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder holding tiny stand-ins for every bundled model."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for entry in BUNDLED.values():
        _export(folder / entry.file, entry.scale)
    monkeypatch.setattr(bundled, "_weights_folder", lambda: folder)
    return folder


def test_resolution_of_names_scales_and_files(weights: Path, tmp_path: Path) -> None:
    assert resolve_model_argument(None, None) == weights / BUNDLED["restoregen-x4"].file
    assert resolve_model_argument(None, 2) == weights / "restoregen_x2.safetensors"
    assert resolve_model_argument(None, 3) == weights / "restoregen_x3.safetensors"
    assert resolve_model_argument("restoregen-real-x4", 4) == weights / "restoregen_real_x4.safetensors"
    assert resolve_model_argument("my.pth", None) == "my.pth"  # a path, checked when it is read
    local = tmp_path / "restoregen-x9.pth"
    local.write_bytes(b"")
    assert resolve_model_argument(str(local), None) == str(local)  # an existing file wins over the name rule


@pytest.mark.parametrize(("model", "scale", "message"), [
    ("restoregen-x5", None, "no bundled model of that name (bundled: restoregen-x2, restoregen-x3, restoregen-x4, "
                            "restoregen-real-x4)"),
    ("restoregen-x2", 4, "--model restoregen-x2 is x2, but --scale 4 was asked for"),
    (None, 8, "--scale 8: no bundled model for x8"),
])
def test_bad_names_and_scales_are_one_line_errors(weights: Path, model, scale, message) -> None:
    with pytest.raises(BundledModelError) as error:
        resolve_model_argument(model, scale)
    assert message in str(error.value) and "\n" not in str(error.value)


def _photo(path: Path) -> None:
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))


@pytest.mark.parametrize(("arguments", "scale"), [
    (["--scale", "2"], 2), (["--scale", "3"], 3), ([], 4), (["--model", "restoregen-real-x4"], 4)])
def test_upscale_picks_the_bundled_model(weights: Path, tmp_path: Path, arguments, scale, capsys) -> None:
    _photo(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "out"), "--device", "cpu", "--quiet",
                 *arguments]) == 0, capsys.readouterr().err
    assert cv2.imread(str(tmp_path / "out" / "in.png")).shape == (12 * scale, 10 * scale, 3)


def test_unknown_name_and_scale_mismatch_exit_2(weights: Path, tmp_path: Path, capsys) -> None:
    _photo(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "o"), "--model", "restoregen-x5"]) == 2
    assert "bundled: restoregen-x2, restoregen-x3, restoregen-x4, restoregen-real-x4" in capsys.readouterr().err
    file = weights / "restoregen_x3.safetensors"
    assert main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "o"), "--model", str(file), "--scale", "2"]) == 2
    assert "is x3, but --scale 2 was asked for" in capsys.readouterr().err
    assert not (tmp_path / "o" / "in.png").exists()


def test_models_lists_every_bundled_model_with_its_measurements(weights: Path, capsys) -> None:
    (weights / bundled.RESULTS_FILE).write_text(json.dumps({
        "command": "python scripts/eval_default.py --write", "date": "2026-12-02", "torch": "2.x",
        "models": {"restoregen-x2": {"clean": {"gain": 2.9, "lanczos_gain": 0.4, "photos": 12,
                                               "seconds_per_megapixel": 1.5, "threads": 2}}}}))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, entry in BUNDLED.items():
        assert f"{name}  x{entry.scale}  HAT" in out
    assert "measured (clean): +2.90 dB Y-PSNR over MATLAB bicubic on 12 held-out photos" in out
    assert "1.50 s per output megapixel at 2 threads" in out


def test_models_says_which_weights_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(bundled, "_weights_folder", lambda: tmp_path)
    assert main(["models"]) == 0
    assert "restoregen-x2  x2  (not in this installation" in capsys.readouterr().out


def test_every_bundled_model_of_this_installation_matches_its_entry() -> None:
    """The shipped files: the scale in the metadata is the entry's, and together they stay small."""
    from restoregen.train.export import load_exported

    total = 0
    for name, entry in BUNDLED.items():
        path = bundled.bundled_path(name)
        if path is None:
            continue
        _, meta = load_exported(path)
        assert int(meta["scale"]) == entry.scale, name
        total += path.stat().st_size
    assert total <= 40 * 2**20


@pytest.mark.parametrize(("arguments", "message"), [
    (["--weights", "mine.safetensors", "--models", "restoregen-x2"], "--models and --weights: give one of them"),
    (["--weights", "mine.safetensors", "--write"], "--write records the bundled models only"),
])
def test_eval_default_refuses_options_that_would_mislead(arguments, message, capsys) -> None:
    eval_default = load_script("eval_default")
    with pytest.raises(SystemExit) as exit_info:
        eval_default.main(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err

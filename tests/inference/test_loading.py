"""load_model: every reference config through every container format; refusal of code-carrying pickles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import restoregen
from restoregen.archs import family_names, network
from restoregen.checkpoints import CheckpointError
from restoregen.inference.loading import default_model_path, load_model, read_state_dict
from tests.reference_data import case_dirs, image_to_image_families, load_case, params, sr_tolerance

CASES = [case for family in image_to_image_families() for case in case_dirs(family)]


def _save(state_dict: dict[str, torch.Tensor], container: str, folder: Path) -> Path:
    """``state_dict`` as a training run or a conversion tool would store it."""
    if container == "safetensors":
        path = folder / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state_dict.items()}, path)
        return path
    wrapped = {
        "params_ema": {"params": {k: v + 1 for k, v in state_dict.items()}, "params_ema": state_dict},
        "params": {"params": state_dict},
        "bare": state_dict,
        "ddp_lightning": {"state_dict": {f"module.{k}": v for k, v in state_dict.items()}, "epoch": 3},
    }[container]
    path = folder / "model.pth"
    torch.save(wrapped, path)
    return path


@pytest.mark.parametrize("container", ["params_ema", "params", "bare", "safetensors", "ddp_lightning"])
@pytest.mark.parametrize("case", params(CASES))
def test_every_config_in_every_container(case: Path, container: str, tmp_path: Path, require_arch) -> None:
    config, state_dict, _ = load_case(case)
    path = _save(state_dict, container, tmp_path)
    loaded = read_state_dict(path)
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[k], state_dict[k]) for k in state_dict)  # EMA weights preferred over params
    require_arch(config["arch"])
    model, info = load_model(path)
    assert (info.arch, info.scale, info.in_channels) == (config["arch"], config["kwargs"]["upscale"], 3)
    listed = {k: v for k, v in config["kwargs"].items() if k not in network(config["arch"]).unrecoverable}
    assert {k: info.kwargs[k] for k in listed} == listed
    assert not model.training


@pytest.mark.parametrize("case", params(CASES))
def test_fixture_output_reproduced(case: Path, require_arch) -> None:
    config, _, io = load_case(case)
    require_arch(config["arch"])
    overrides = {k: v for k, v in config["kwargs"].items() if k in network(config["arch"]).unrecoverable}
    model, _ = load_model(case / "weights.safetensors", **overrides)
    with torch.no_grad():
        out = model(io["input"])
    assert (out - io["output"]).abs().max().item() <= sr_tolerance(io["output"])


class _WritesMarker:
    """Unpickling this object creates a file: stands for arbitrary code in a downloaded checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_code_carrying_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "payload": _WritesMarker(marker)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused: its pickle would call io\.open"):
        load_model(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: a full unpickle does run the (harmless) payload
    assert marker.exists()


def test_errors_name_the_file_and_the_problem(tmp_path: Path, tiny_model_file: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.pth: no such file"):
        load_model(tmp_path / "missing.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth: the file is empty"):
        load_model(tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.pth: not a torch.save checkpoint"):
        load_model(tmp_path / "text.pth")
    (tmp_path / "text.safetensors").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.safetensors: not a readable safetensors file"):
        load_model(tmp_path / "text.safetensors")
    torch.save({"body.0.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    own = re.escape(f"({family_names()})")
    with pytest.raises(CheckpointError, match=f"other.pth: not an architecture that restoregen {own} or spandrel"):
        load_model(tmp_path / "other.pth")
    state_dict = load_file(tiny_model_file)
    state_dict["conv_after_body.weight"] = state_dict["conv_after_body.weight"][:, :, :1]
    with pytest.raises(CheckpointError, match="do not fit the detected HAT.*conv_after_body.weight"):
        load_model(state_dict)
    state_dict = load_file(tiny_model_file)
    del state_dict["norm.bias"]
    with pytest.raises(CheckpointError, match=r"do not fit the detected HAT: missing 1 \(e.g. norm.bias\)"):
        load_model(state_dict)
    state_dict["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected 1 \(e.g. extra.weight\)"):
        load_model(state_dict)


def test_overrides_and_computed_buffers(tiny_model_file: Path) -> None:
    state_dict = load_file(tiny_model_file)
    index = state_dict.pop("relative_position_index_SA")  # a buffer the network computes itself
    model, info = load_model(state_dict, img_range=255.0)
    assert model.img_range == 255.0 and info.kwargs["img_range"] == 255.0
    assert torch.equal(model.relative_position_index_SA, index)
    assert (info.arch, info.scale, info.size_multiple) == ("HAT", 2, 4)
    assert torch.bfloat16 in info.dtypes and torch.float16 not in info.dtypes


def test_public_api_and_light_import() -> None:
    assert restoregen.load_model is load_model
    bundled = default_model_path()
    assert bundled is not None and bundled.name == "restoregen_default_x4.safetensors"
    model, info = load_model(bundled)
    assert (info.arch, info.scale) == ("HAT", 4)
    code = ("import sys, restoregen, restoregen.inference.command; "
            "print(sorted(m for m in ('torch', 'numpy', 'cv2', 'PIL') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"

"""Reading model files without running pickle code."""

from __future__ import annotations

import argparse
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from restoregen.checkpoints import (
    CheckpointError,
    NamespaceRecord,
    SkippedObject,
    UnsafeCheckpointError,
    key_variants,
    metadata_json,
    read_checkpoint,
    unwrap_state_dict,
)


def write_marker(path: str) -> None:
    Path(path).write_text("code ran")


class CallsOwnFunction:
    """Unpickling this calls ``write_marker`` (a function no allow-list knows)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return write_marker, (self.marker,)


class CallsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class CallsExec:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('x')",)


def test_official_layout_reads_args_as_plain_fields(tmp_path):
    weights = OrderedDict(w=torch.arange(6.0).view(2, 3))
    args = argparse.Namespace(size=256, G_channel_multiplier=2, lr_mlp=0.01, path="/data/ffhq")
    torch.save({"g": weights, "g_ema": weights, "d": {}, "args": args}, tmp_path / "official.pt")
    checkpoint = read_checkpoint(tmp_path / "official.pt")
    record = checkpoint.data["args"]
    assert isinstance(record, NamespaceRecord) and not isinstance(record, argparse.Namespace)
    assert record.as_dict() == vars(args)
    assert torch.equal(checkpoint.data["g_ema"]["w"], weights["w"])
    assert checkpoint.skipped == []


@pytest.mark.parametrize("payload", [CallsSystem, CallsExec])
def test_code_calling_pickles_are_refused(tmp_path, payload):
    marker = tmp_path / "marker"
    torch.save({"g_ema": {"w": torch.ones(1)}, "args": payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_unknown_globals_are_skipped_not_run(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": CallsOwnFunction(marker)}, tmp_path / "sneaky.pt")
    checkpoint = read_checkpoint(tmp_path / "sneaky.pt")
    assert not marker.exists()
    assert isinstance(checkpoint.data["args"], SkippedObject)
    assert [name.rsplit(".", 1)[-1] for name in checkpoint.skipped] == ["write_marker"]
    assert torch.equal(checkpoint.data["g_ema"]["w"], torch.ones(2))


def test_safetensors_and_bad_files(tmp_path):
    save_file({"w": torch.ones(2)}, tmp_path / "m.safetensors", metadata={"kwargs": '{"size": 16}'})
    checkpoint = read_checkpoint(tmp_path / "m.safetensors")
    assert metadata_json(checkpoint, "kwargs") == {"size": 16} and checkpoint.skipped == []
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")


W = {"w": torch.ones(1)}
EMA = {"w": torch.zeros(1)}


@pytest.mark.parametrize("data,param_key,entry", [
    (W, None, None),  # a bare state dict
    (W, "params", None),  # BasicSR: a file without the key is the state dict itself
    ({"params": W, "params_ema": EMA}, None, "params_ema"),  # EMA weights first
    ({"params": W, "params_ema": EMA}, "params", "params"),
    ({"params": W}, "params_ema", "params"),  # BasicSR's fallback to params
    ({"g": W, "g_ema": EMA, "d": W, "args": NamespaceRecord(size=16)}, "params_ema", "g_ema"),  # official GAN file
    ({"g": W, "g_ema": EMA, "d": W}, "d", "d"),
    ({"g": W, "d": W}, None, "g"),
    ({"state_dict": {"model": EMA}, "epoch": 3}, None, "state_dict/model"),  # nested wrappers, other values left out
])
def test_unwrap_state_dict(data, param_key, entry):
    state, used = unwrap_state_dict(data, param_key)
    assert used == entry and list(state) == ["w"]
    assert torch.equal(state["w"], (EMA if entry in ("params_ema", "g_ema", "state_dict/model") else W)["w"])


def test_unwrap_state_dict_errors():
    with pytest.raises(CheckpointError, match=r"no 'params_ema' in the file \(keys: g, d\)"):
        unwrap_state_dict({"g": W, "d": W}, "params_ema")  # a named key never falls back to another network
    with pytest.raises(CheckpointError, match=r"no tensors found \(keys: optimizer, iter\)"):
        unwrap_state_dict({"optimizer": {"lr": 1}, "iter": 3})
    with pytest.raises(CheckpointError, match="holds a list, not a dict of weights"):
        unwrap_state_dict([W])
    with pytest.raises(CheckpointError, match="holds <skipped mod.f>, not a dict of weights"):
        unwrap_state_dict(type("Skipped", (SkippedObject,), {"global_name": "mod.f"})())


def test_key_variants_remove_one_wrapper_prefix_at_a_time():
    stored = {"module.model.0.weight": torch.ones(1), "module.model.1.bias": torch.ones(1)}
    assert [list(v) for v in key_variants(stored)] == [
        list(stored), ["model.0.weight", "model.1.bias"], ["0.weight", "1.bias"]]
    assert key_variants({}) == [{}]


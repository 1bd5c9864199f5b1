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
    metadata_json,
    read_checkpoint,
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

"""The start of ``train``/``test``, before any folder is made: a bad ``path.pretrain_network_g``
is one line naming the option file, the line, the key and the problem (key lists cut to a few
names and a count), exit status 2, no traceback; the torch thread count is chosen and reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restoregen.archs import build
from restoregen.cli import main
from tests.train.helpers import tiny_hat, tiny_options, write_options


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _weights(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.pth"
    if kind == "unsafe":
        torch.save({"params": {"w": torch.zeros(1)}, "payload": _WritesMarker(tmp_path / "code_ran")}, path)
    elif kind == "foreign":  # 200 tensors of some other network
        torch.save({"params": {f"body.{i}.weight": torch.zeros(1) for i in range(200)}}, path)
    else:  # the right network, another width
        kwargs = {k: v for k, v in tiny_hat().items() if k != "type"}
        torch.save({"params": build("HAT", **{**kwargs, "embed_dim": 16}).state_dict()}, path)
    return path


def _option_file(tmp_path: Path, photos: Path, command: str, weights: Path) -> Path:
    opt = tiny_options(photos, name="tiny_pretrained", val=False)
    opt["path"]["pretrain_network_g"] = str(weights)
    if command == "test":
        opt["datasets"] = {"test_1": {**opt["datasets"]["train"], "name": "photos"}}
        for key in ("gt_size", "use_hflip", "use_rot", "use_shuffle", "num_worker_per_gpu", "batch_size_per_gpu"):
            opt["datasets"]["test_1"].pop(key)
        del opt["train"]
    return write_options(tmp_path / f"{command}.yml", opt)


@pytest.mark.parametrize("command", ["train", "test"])
@pytest.mark.parametrize("kind, words", [
    ("unsafe", "refused: its pickle would call io.open"),
    ("foreign", "missing "),
    ("wider", "other shape "),
])
def test_bad_pretrained_weights_are_one_line(photos, tmp_path, monkeypatch, capsys, command, kind, words):
    monkeypatch.chdir(tmp_path)
    weights = _weights(tmp_path, kind)
    options = _option_file(tmp_path, photos, command, weights)
    assert main([command, "-opt", str(options)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and len(err) < 600, err
    line = next(i for i, text in enumerate(options.read_text().splitlines(), 1) if "pretrain_network_g" in text)
    assert err.startswith(f"restoregen {command}: error: {options}:{line}: path.pretrain_network_g: {weights}: ")
    assert words in err
    if kind == "foreign":
        assert "unexpected 200 (body.0.weight, body.1.weight, body.2.weight, ... (197 more))" in err
    assert not (tmp_path / "code_ran").exists()
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "results").exists()


def test_engine_sets_and_reports_the_thread_count(photos, tmp_path, monkeypatch):
    from restoregen.config import load_options
    from restoregen.train.engine import Engine

    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        opt = load_options(write_options(tmp_path / "train.yml", tiny_options(photos)))
        engine = Engine(opt, threads=1)
        assert engine.threads.startswith("torch threads: 1 (--threads;") and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert Engine(opt).threads.startswith("torch threads: 2 (OMP_NUM_THREADS;")
    finally:
        torch.set_num_threads(before)
    assert list(tmp_path.iterdir()) == [tmp_path / "train.yml"]  # nothing made before run()


def test_partial_files_of_a_killed_run_are_removed_on_resume(photos, tmp_path, monkeypatch):
    import os
    import time

    from restoregen.config import load_options
    from restoregen.fileio import part_name
    from restoregen.train.engine import Engine

    monkeypatch.chdir(tmp_path)
    opt = load_options(write_options(tmp_path / "train.yml", tiny_options(photos, name="killed")))
    root = tmp_path / "experiments" / "killed"
    kept = root / "models" / "net_g_10.pth"
    leftovers = [part_name(root / "models" / "net_g_20.pth"), part_name(root / "visualization" / "val" / "a.png")]
    for path in [kept, *leftovers]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 60, time.time() - 60))
    before = torch.get_num_threads()
    try:
        Engine(opt, threads=before)._prepare_folders(resuming=True)
    finally:
        torch.set_num_threads(before)
    assert kept.exists() and not any(path.exists() for path in leftovers)

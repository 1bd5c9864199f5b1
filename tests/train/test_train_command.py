"""``restoregen train``: a tiny HAT run with validation and checkpoints, exact resume after
SIGKILL, two processes under Accelerate, ``--debug``, ``restoregen test``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from restoregen.archs import build
from restoregen.cli import main
from tests.train.helpers import cli_env, run_cli, tiny_hat, tiny_options, train_two_processes, write_options


def tiny_network() -> torch.nn.Module:
    kwargs = tiny_hat()
    return build(kwargs.pop("type"), **kwargs)


def load_hat(path: Path, key: str) -> torch.nn.Module:
    net = tiny_network()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)[key], strict=True)
    return net


def test_thirty_iterations_with_validation_and_checkpoints(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    options = write_options(tmp_path / "tiny.yml", tiny_options(photos))
    assert main(["train", "-opt", str(options)]) == 0
    root = tmp_path / "experiments" / "tiny"
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["10.state", "20.state", "30.state"]
    for name in ("net_g_10.pth", "net_g_30.pth", "net_g_latest.pth", "net_g_best.pth"):
        data = torch.load(root / "models" / name, map_location="cpu", weights_only=True)
        assert set(data) == {"params", "params_ema"}  # BasicSR layout, EMA included
    net = load_hat(root / "models" / "net_g_latest.pth", "params_ema")
    assert net(torch.rand(1, 3, 12, 20)).shape == (1, 3, 24, 40)
    log = next(root.glob("train_tiny_*.log")).read_text()
    assert "validation tinyval at iteration 15: psnr" in log and "validation tinyval at iteration 30" in log
    assert (root / "visualization" / "coffee" / "coffee_30.png").is_file()
    state = torch.load(root / "training_states" / "30.state", map_location="cpu", weights_only=True)
    assert state["iter"] == 30 and state["loader"]["batches"] == 30
    assert set(state["optimizers"]) == {"g"} and state["rng"][0]["torch"].dtype == torch.uint8
    assert state["best"]["tinyval"]["psnr"]["iter"] in (15, 30)
    assert not list(root.rglob("*.tmp"))  # nothing half-written left behind


@pytest.mark.slow
def test_sigkill_then_auto_resume_matches_an_uninterrupted_run(photos, tmp_path, monkeypatch):
    opt = tiny_options(photos, total_iter=24, val=False, workers=1, checkpoint_every=4)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for folder in (whole, killed):
        folder.mkdir()
        write_options(folder / "tiny.yml", opt)
    monkeypatch.chdir(whole)  # the uninterrupted run, in this process (one thread, as the others)
    assert main(["train", "-opt", "tiny.yml"]) == 0

    process = subprocess.Popen([sys.executable, "-m", "restoregen", "train", "-opt", "tiny.yml"], cwd=killed,
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    states = killed / "experiments" / "tiny" / "training_states"
    deadline = time.time() + 240
    while not (states / "8.state").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (states / "24.state").exists()

    resumed = run_cli(["train", "-opt", "tiny.yml", "--auto-resume"], killed)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from iteration" in resumed.stderr
    a = torch.load(whole / "experiments/tiny/models/net_g_24.pth", weights_only=True)
    b = torch.load(killed / "experiments/tiny/models/net_g_24.pth", weights_only=True)
    for key in ("params", "params_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"


@pytest.mark.slow
def test_two_processes_under_accelerate_train_one_model(photos, tmp_path):
    write_options(tmp_path / "tiny.yml", tiny_options(photos, total_iter=4, val=False, checkpoint_every=4))
    train_two_processes(tmp_path, "tiny.yml")
    state = torch.load(tmp_path / "experiments/tiny/training_states/4.state", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    net = load_hat(tmp_path / "experiments/tiny/models/net_g_latest.pth", "params")
    assert torch.isfinite(net(torch.rand(1, 3, 8, 8))).all()


def test_debug_runs_a_few_iterations(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = write_options(tmp_path / "tiny.yml", tiny_options(photos, total_iter=1000))
    assert main(["train", "-opt", str(options), "--debug"]) == 0
    root = tmp_path / "experiments" / "debug_tiny"
    assert [p.name for p in (root / "training_states").iterdir()] == ["8.state"]
    log = next(root.glob("*.log")).read_text()
    assert log.count("[epoch") == 8 and "validation tinyval at iteration 8" in log


def test_restoregen_test_command(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "net.pth"
    torch.manual_seed(0)
    torch.save({"params_ema": tiny_network().state_dict()}, weights)
    opt = {"name": "tiny_test", "model_type": "HATModel", "scale": 2, "num_gpu": 0,
           "datasets": {"test_1": {"name": "photos", "type": "BicubicPairedDataset", "dataroot_gt": str(photos),
                                   "io_backend": {"type": "disk"}}},
           "network_g": tiny_hat(),
           "path": {"pretrain_network_g": str(weights), "param_key_g": "params_ema", "strict_load_g": True},
           "val": {"save_img": True, "suffix": None, "metrics": {
               "psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}}}
    assert main(["test", "-opt", str(write_options(tmp_path / "test.yml", opt))]) == 0
    results = tmp_path / "results" / "tiny_test"
    assert len(list((results / "visualization" / "photos").glob("*_tiny_test.png"))) == 4
    assert "photos (4 images): psnr:" in next(results.glob("test_*.log")).read_text()


def test_tiles_cover_the_image_like_one_pass():
    from restoregen.train.evaluate import run_padded, run_tiled

    net = tiny_network().eval()
    lq = torch.rand(1, 3, 40, 56)
    whole = run_padded(net, lq, 8)
    tiled = run_tiled(net, lq, tile_size=16, tile_pad=16, multiple=8)
    assert tiled.shape == whole.shape == (1, 3, 80, 112)
    assert (tiled - whole).abs().mean() < 0.02  # window attention sees slightly different context near tile edges
    hard = run_tiled(net, lq, tile_size=16, tile_pad=0, multiple=8)
    assert (hard - whole).abs().mean() > (tiled - whole).abs().mean()


def test_bf16_gradient_accumulation_and_clipping(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = tiny_options(photos, total_iter=2, val=False, checkpoint_every=2)
    opt["train"].update(mixed_precision="bf16", grad_accum_steps=2, grad_clip_norm=0.01)
    assert main(["train", "-opt", str(write_options(tmp_path / "tiny.yml", opt))]) == 0
    state = torch.load(tmp_path / "experiments/tiny/training_states/2.state", weights_only=True)
    assert state["loader"]["batches"] == 4  # two micro-batches per optimizer step
    assert state["optimizers"]["g"]["state"][0]["step"].item() == 2

"""``restoregen train`` with the StyleSwin GAN recipe: a tiny run (R1, bCR, EMA, snapshots,
checkpoints), exact auto-resume, two processes under Accelerate, FID during training, and
``restoregen sample`` on what the run wrote."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restoregen.cli import main
from tests.train.helpers import train_two_processes, write_options

SIZE = 16


def tiny_gan_options(photos: Path, name: str = "tinygan", *, total_iter: int = 20, checkpoint_every: int = 10) -> dict:
    """A 16x16 StyleSwin (16 channels) on the tiny photos; R1 every 8 iterations (1, 9, 17)."""
    return {
        "name": name, "model_type": "StyleSwinGANModel", "num_gpu": 0, "manual_seed": 0,
        "datasets": {"train": {"name": "tiny", "type": "ImageFolderDataset", "dataroot": str(photos), "size": SIZE,
                               "use_hflip": True, "batch_size_per_gpu": 2, "num_worker_per_gpu": 0}},
        "network_g": {"type": "StyleSwinGenerator", "size": SIZE, "style_dim": 16, "n_mlp": 2, "lr_mlp": 0.02,
                      "channels": [16, 16, 16]},
        "network_d": {"type": "StyleSwinDiscriminator", "size": SIZE, "sn": True, "channels": {4: 16, 8: 16, 16: 16}},
        "train": {"total_iter": total_iter, "ema_decay": 0.9,
                  "optim_g": {"type": "Adam", "lr": 5e-4, "betas": [0.0, 0.99]},
                  "optim_d": {"type": "Adam", "lr": 2e-3, "betas": [0.0, 0.99]},
                  "scheduler": {"type": "LinearDecay", "start_iter": total_iter // 2},
                  "r1_opt": {"gamma": 10.0, "interval": 8}, "bcr_opt": {"real_weight": 10, "fake_weight": 10},
                  "d_grad_clip": 5.0, "style_mixing": 0.5},
        "logger": {"print_freq": 1, "save_checkpoint_freq": checkpoint_every, "save_snapshot_freq": 10,
                   "snapshot_images": 4, "use_tb_logger": False},
    }


def logged_losses(log: str) -> list[dict[str, float]]:
    lines = [line.split("] ", 2)[2] for line in log.splitlines() if "[epoch" in line]
    return [{key: float(value) for key, value in re.findall(r"(\w+): (\S+)", line)} for line in lines]


def test_twenty_iterations_then_auto_resume_reaches_the_same_weights(photos, tmp_path, monkeypatch):
    import restoregen.train.recipes.gan as gan

    calls = []
    monkeypatch.setattr(gan, "r1_penalty", lambda pred, images: _counting_r1(calls, pred, images))
    monkeypatch.chdir(tmp_path)
    options = write_options(tmp_path / "tiny.yml", tiny_gan_options(photos))
    assert main(["train", "-opt", str(options)]) == 0
    assert len(calls) == 3  # lazy R1 at iterations 1, 9 and 17

    root = tmp_path / "experiments" / "tinygan"
    losses = logged_losses(next(root.glob("train_tinygan_*.log")).read_text())
    assert len(losses) == 20 and {"l_d", "l_d_bcr", "l_r1", "l_g"} <= set(losses[0])
    assert all(math.isfinite(v) for step in losses for v in step.values())
    assert losses[0]["l_r1"] > 0

    model = torch.load(root / "models" / "net_g_20.pth", map_location="cpu", weights_only=True)
    assert model["network_g"]["lr_mlp"] == 0.02  # the model file describes its network
    differs = [k for k, v in model["params"].items() if not torch.equal(v, model["params_ema"][k])]
    assert differs, "the EMA generator equals G"
    state = torch.load(root / "training_states" / "20.state", map_location="cpu", weights_only=True)
    d_group = state["optimizers"]["d"]["param_groups"][0]
    assert d_group["initial_lr"] == pytest.approx(2e-3 * 8 / 9)  # lazy regularisation: k / (k + 1)
    assert d_group["betas"][1] == pytest.approx(0.99 ** (8 / 9))
    assert d_group["lr"] == pytest.approx(2e-3 * 8 / 9 * (1 - 8 / 10))  # LinearDecay from 10 to 20
    for snapshot in ("snapshot_00000010.png", "snapshot_00000020.png"):
        with Image.open(root / "visualization" / snapshot) as grid:
            assert grid.size == (2 * SIZE + 3 * 2, 2 * SIZE + 3 * 2)  # 2x2 images with 2-pixel gaps
    assert (root / "models" / "net_g_latest.safetensors").is_file()
    assert not list(root.rglob("*.tmp"))

    # lose the last checkpoint: --auto-resume continues from iteration 10 to the same weights
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "experiments", resumed / "experiments")
    for path in (*resumed.glob("experiments/tinygan/models/*_20.pth"),
                 resumed / "experiments/tinygan/training_states/20.state"):
        path.unlink()
    monkeypatch.chdir(resumed)
    assert main(["train", "-opt", str(options), "--auto-resume"]) == 0
    again = torch.load(resumed / "experiments/tinygan/models/net_g_20.pth", map_location="cpu", weights_only=True)
    for key in ("params", "params_ema"):
        for name, tensor in model[key].items():
            assert torch.equal(tensor, again[key][name]), f"{key}.{name} differs after resume"
    logs = "".join(p.read_text() for p in (resumed / "experiments/tinygan").glob("train_tinygan_*.log"))
    assert "resumed from iteration 10" in logs


def _counting_r1(calls: list, pred, images):
    from restoregen.losses.gan import r1_penalty

    calls.append(1)
    return r1_penalty(pred, images)


def test_sample_from_the_checkpoints_of_a_run(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    options = write_options(tmp_path / "tiny.yml", tiny_gan_options(photos, total_iter=2, checkpoint_every=2))
    assert main(["train", "-opt", str(options)]) == 0
    capsys.readouterr()
    models = tmp_path / "experiments" / "tinygan" / "models"
    images = {}
    for name in ("net_g_latest.pth", "net_g_latest.safetensors"):
        out = tmp_path / name
        assert main(["sample", "--model", str(models / name), "--n", "3", "--seed", "1", "--out", str(out)]) == 0
        notes = capsys.readouterr().err
        assert "'lr_mlp': 0.02" in notes  # read from the checkpoint, not defaulted
        assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png", "grid.png"]
        images[name] = [np.asarray(Image.open(out / f"{i:06d}.png")) for i in range(3)]
    for pth, safetensors in zip(images["net_g_latest.pth"], images["net_g_latest.safetensors"], strict=True):
        assert pth.shape == (SIZE, SIZE, 3) and np.array_equal(pth, safetensors)  # both hold the EMA generator


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    """pytorch-fid-layout Inception weights, random (the plumbing only)."""
    from restoregen.metrics.fid import FIDInceptionV3

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "inception-random.pth"
    torch.save(FIDInceptionV3().net.state_dict(), path)
    return path


def test_fid_and_kid_during_training(photos, random_inception, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = tiny_gan_options(photos, total_iter=2, checkpoint_every=2)
    opt["val"] = {"val_freq": 2, "fid": {"inception_weights": str(random_inception), "num_samples": 4,
                                         "batch_size": 4}}
    assert main(["train", "-opt", str(write_options(tmp_path / "tiny.yml", opt))]) == 0
    root = tmp_path / "experiments" / "tinygan"
    log = next(root.glob("train_tinygan_*.log")).read_text()
    assert "Inception features of 4 real images" in log
    assert re.search(r"validation tiny at iteration 2: fid: \S+ \(best \S+ @ 2\), kid: \S+ \(best", log)
    state = torch.load(root / "training_states" / "2.state", map_location="cpu", weights_only=True)
    fid, kid = state["best"]["tiny"]["fid"]["val"], state["best"]["tiny"]["kid"]["val"]
    assert fid > 0 and math.isfinite(kid)  # random Inception features: small, but fakes are not the reals
    assert (root / "models" / "net_g_best.pth").is_file()


def test_diffaugment_with_adaptive_probability(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = tiny_gan_options(photos, total_iter=4, checkpoint_every=4)
    # a target below any E[sign(D(x))] makes p grow by 2 * 2 / (0.1 * 1000) every 2 iterations
    opt["train"].update(bcr_opt=None, diffaug_opt={"policy": "color,translation,cutout", "target": -1.0,
                                                   "interval": 2, "speed_kimg": 0.1})
    assert main(["train", "-opt", str(write_options(tmp_path / "tiny.yml", opt))]) == 0
    root = tmp_path / "experiments" / "tinygan"
    losses = logged_losses(next(root.glob("train_tinygan_*.log")).read_text())
    p = [step["aug_p"] for step in losses]
    assert p == pytest.approx([0.0, 0.04, 0.04, 0.08])
    state = torch.load(root / "training_states" / "4.state", map_location="cpu", weights_only=True)
    assert state["recipe"]["aug_p"] == pytest.approx(p[-1], abs=1e-4)


@pytest.mark.slow
def test_two_processes_under_accelerate(photos, tmp_path):
    # 10 iterations: R1 at 1 and 9, a checkpoint and a snapshot at 10
    write_options(tmp_path / "tiny.yml", tiny_gan_options(photos, total_iter=10, checkpoint_every=10))
    train_two_processes(tmp_path, "tiny.yml")
    root = tmp_path / "experiments" / "tinygan"
    state = torch.load(root / "training_states" / "10.state", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert (root / "visualization" / "snapshot_00000010.png").is_file()
    losses = logged_losses(next(root.glob("train_tinygan_*.log")).read_text())
    assert len(losses) == 10 and all(math.isfinite(v) for step in losses for v in step.values())
    assert losses[8]["l_r1"] != losses[7]["l_r1"]  # the second R1 step ran (the log shows the latest value)


def test_fine_tune_from_an_official_checkpoint(photos, tmp_path, monkeypatch, capsys):
    """``pretrain_network_g/d`` may name an official ``.pt`` (g / d / g_ema / args as a Namespace):
    read without unpickling the Namespace; G from ``g``, its EMA from ``g_ema``, D from ``d``."""
    import argparse

    from restoregen.archs import build

    opt = tiny_gan_options(photos, total_iter=1, checkpoint_every=1)
    nets = {key: build(section.pop("type"), **section)
            for key, section in (("g", dict(opt["network_g"])), ("d", dict(opt["network_d"])))}
    ema = {k: v + 1 for k, v in nets["g"].state_dict().items()}
    official = tmp_path / "official.pt"
    torch.save({"g": nets["g"].state_dict(), "d": nets["d"].state_dict(), "g_ema": ema,
                "args": argparse.Namespace(size=SIZE, r1=10.0)}, official)
    opt["path"] = {"pretrain_network_g": str(official), "param_key_g": "g",
                   "pretrain_network_d": str(official), "param_key_d": "d"}
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-opt", str(write_options(tmp_path / "tiny.yml", opt))]) == 0
    err = capsys.readouterr().err
    for key in ("(key g)", "(key g_ema)", "(key d)"):
        assert key in err
    trained = torch.load(tmp_path / "experiments/tinygan/models/net_g_1.pth", weights_only=True)
    name = "style.1.weight"  # one EMA step of decay 0.9 away from the official g_ema
    expected = 0.9 * ema[name] + 0.1 * trained["params"][name]
    torch.testing.assert_close(trained["params_ema"][name], expected)


@pytest.mark.parametrize("change, key, words", [
    (lambda o: o["datasets"]["train"].pop("size"), "datasets.train.size", "required option is missing"),
    (lambda o: o["train"]["r1_opt"].update(gama=1), "train.r1_opt.gama", "did you mean 'gamma'"),
    (lambda o: o.update(val={"val_freq": 2, "fid": {"inception_weights": "nowhere.pth"}}),
     "val.fid.inception_weights", "does not exist"),
    (lambda o: o["train"].update(diffaug_opt={"policy": "color,blur"}), "train.diffaug_opt.policy",
     "unknown augmentation 'blur'"),
    (lambda o: o["train"].update(grad_accum_steps=2), "train.grad_accum_steps", "use 1"),
])
def test_option_errors_name_the_key(photos, tmp_path, monkeypatch, capsys, change, key, words):
    opt = tiny_gan_options(photos)
    change(opt)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-opt", str(write_options(tmp_path / "tiny.yml", opt))]) == 2
    err = capsys.readouterr().err
    assert f": {key}: " in err and words in err and "Traceback" not in err

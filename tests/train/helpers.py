"""Tiny photos, option files and runners for the training tests (``from tests.train.helpers import ...``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def write_photos(folder: Path, size: tuple[int, int] = (96, 80)) -> Path:
    """Small BGR PNGs of scikit-image sample photos."""
    import cv2
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        image = np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1])
        cv2.imwrite(str(folder / f"{name}.png"), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return folder


def tiny_hat(scale: int = 2) -> dict:
    return {"type": "HAT", "upscale": scale, "in_chans": 3, "img_size": 16, "window_size": 8, "compress_ratio": 3,
            "squeeze_factor": 4, "conv_scale": 0.01, "overlap_ratio": 0.5, "img_range": 1.0, "depths": [1],
            "embed_dim": 12, "num_heads": [2], "mlp_ratio": 2, "upsampler": "pixelshuffle",
            "resi_connection": "1conv"}


def tiny_options(photos: Path, name: str = "tiny", *, total_iter: int = 30, val: bool = True, workers: int = 0,
                 checkpoint_every: int = 10) -> dict:
    """A tiny HAT x2 run on bicubic pairs of ``photos``."""
    opt = {
        "name": name, "model_type": "HATModel", "scale": 2, "num_gpu": 0, "manual_seed": 0,
        "datasets": {"train": {"name": "tiny", "type": "BicubicPairedDataset", "dataroot_gt": str(photos),
                               "io_backend": {"type": "disk"}, "gt_size": 32, "use_hflip": True, "use_rot": True,
                               "use_shuffle": True, "num_worker_per_gpu": workers, "batch_size_per_gpu": 2}},
        "network_g": tiny_hat(),
        "path": {"pretrain_network_g": None},
        "train": {"ema_decay": 0.9, "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
                  "scheduler": {"type": "MultiStepLR", "milestones": [20], "gamma": 0.5},
                  "total_iter": total_iter, "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}},
        "logger": {"print_freq": 10, "save_checkpoint_freq": checkpoint_every, "use_tb_logger": False},
    }
    if val:
        opt["datasets"]["val"] = {"name": "tinyval", "type": "BicubicPairedDataset", "dataroot_gt": str(photos),
                                  "io_backend": {"type": "disk"}}
        opt["val"] = {"val_freq": 15, "save_img": True, "metrics": {
            "psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}}
    return opt


def write_options(path: Path, opt: dict) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def cli_env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restoregen", *args], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_two_processes(cwd: Path, option_file: str) -> subprocess.CompletedProcess:
    """``restoregen train`` under ``accelerate launch`` with 2 CPU processes; asserts it trained one model.

    accelerate 1.x starts several CPU processes with --multi_gpu (torchrun, gloo); its --cpu flag runs
    one process unless an MPI host file is given. num_gpu: 0 keeps every process on the CPU.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "restoregen", "train", "-opt", option_file]
    result = subprocess.run(command, cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stderr and "weights identical on all 2 processes" in result.stderr
    return result

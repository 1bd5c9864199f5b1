"""Every shipped training option file starts and runs one iteration, with the network shrunk and
the datasets pointed at a tiny generated folder. Files for networks not yet in
``restoregen.archs.list_archs()`` are skipped (they run once the network is registered)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from restoregen.archs import list_archs
from restoregen.cli import main
from tests.train.helpers import REPO, write_photos

TRAIN_FILES = sorted((REPO / "options" / "train").rglob("*.yml"))
SHRINK = {"embed_dim": 12, "dim": 12, "depths": [1], "num_heads": [2], "groups": 1, "blocks": 1, "window_size": 4,
          "img_size": 8, "compress_ratio": 3, "squeeze_factor": 4, "idynamic_num_heads": 2, "restormer_num_heads": 2,
          "tlc_kernel": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_sets")
    write_photos(root / "gt", size=(48, 48))
    return root


def lq_folder(root: Path, scale: int, template: str) -> Path:
    """x``scale`` MATLAB-bicubic LQ of the tiny GT folder, named through ``template``."""
    from restoregen._compat import import_basicsr

    folder = root / f"lq_x{scale}_{re.sub(r'[^a-z0-9]', '_', template)}"
    if not folder.exists():
        folder.mkdir()
        imresize = import_basicsr("utils.matlab_functions").imresize
        for gt in sorted((root / "gt").iterdir()):
            lq = imresize(cv2.imread(str(gt)).astype(np.float32) / 255.0, 1 / scale)
            cv2.imwrite(str(folder / f"{template.format(gt.stem)}.png"), (lq.clip(0, 1) * 255).round().astype(np.uint8))
    return folder


def lmdb_store(root: Path, size: int) -> Path:
    """The tiny GT photos as a stylegan2-pytorch ``prepare_data.py`` LMDB store (keys ``<size>-<index>``)."""
    import lmdb

    folder = root / f"lmdb_{size}"
    if not folder.exists():
        with lmdb.open(str(folder), map_size=1 << 24) as env, env.begin(write=True) as txn:
            photos = sorted((root / "gt").iterdir())
            for index, photo in enumerate(photos):
                txn.put(f"{size}-{index:05d}".encode(), photo.read_bytes())
            txn.put(b"length", str(len(photos)).encode())
    return folder


def shrink_gan(opt: dict, data: Path) -> None:
    """A 16x16 StyleSwin with 16 channels everywhere, on the tiny photos (LMDB where the file reads LMDB)."""
    size = 16
    opt["network_g"].update(size=size, style_dim=16, n_mlp=1, channels=[16, 16, 16])
    opt["network_d"].update(size=size, channels={4: 16, 8: 16, 16: 16})
    for dataset in opt["datasets"].values():
        lmdb = dataset["type"] == "LMDBImageDataset"
        dataset.update(dataroot=str(lmdb_store(data, size) if lmdb else data / "gt"), size=size,
                       batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt["logger"]["snapshot_images"] = 4


def shrink(opt: dict, data: Path, vgg: Path) -> dict:
    if opt["model_type"] == "StyleSwinGANModel":
        shrink_gan(opt, data)
        return finish(opt, vgg)
    scale = opt["scale"]
    net = opt["network_g"]
    net.update({k: v for k, v in SHRINK.items() if k in net})
    if net["type"] == "DLGSANet":
        net["window_size"] = 3  # its dynamic kernels are centred: odd sizes only
    if "network_d" in opt:
        opt["network_d"]["num_feat"] = 8
    for key, dataset in opt["datasets"].items():
        dataset["dataroot_gt"] = str(data / "gt")
        dataset["io_backend"] = {"type": "disk"}
        if dataset.get("dataroot_lq") is not None:
            dataset["dataroot_lq"] = str(lq_folder(data, scale, dataset.get("filename_tmpl", "{}")))
        dataset.pop("meta_info_file", None)
        dataset.pop("meta_info", None)
        dataset.pop("image_list", None)
        if key == "train":
            dataset.update(gt_size=8 * scale, batch_size_per_gpu=1, num_worker_per_gpu=0)
    if "gt_size" in opt:  # Real-* recipes crop after degrading
        opt["gt_size"] = 8 * scale
    return finish(opt, vgg)


def finish(opt: dict, vgg: Path) -> dict:
    """One iteration on the CPU with a checkpoint, validation and logs at it."""
    opt["num_gpu"] = 0
    opt.setdefault("path", {})["pretrain_network_g"] = None
    opt["train"]["total_iter"] = 1
    if opt["train"].get("perceptual_opt"):
        opt["train"]["perceptual_opt"]["vgg_weights"] = str(vgg)
    opt["logger"].update(print_freq=1, save_checkpoint_freq=1, use_tb_logger=False)
    if opt.get("val"):
        opt["val"]["val_freq"] = 1
    return opt


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: str(p.relative_to(REPO / "options" / "train")))
def test_training_file_runs_one_iteration(path, data, random_vgg19, tmp_path, monkeypatch, capsys):
    opt = yaml.safe_load(path.read_text())
    arch = opt["network_g"]["type"]
    if arch not in list_archs():
        pytest.skip(f"network {arch} is not registered in restoregen.archs yet")
    options = tmp_path / path.name
    options.write_text(yaml.safe_dump(shrink(opt, data, random_vgg19), sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-opt", str(options)]) == 0, capsys.readouterr().err
    assert (tmp_path / "experiments" / opt["name"] / "models" / "net_g_1.pth").is_file()
    if "network_d" in opt:
        assert (tmp_path / "experiments" / opt["name"] / "models" / "net_d_1.pth").is_file()
    if opt["model_type"] == "StyleSwinGANModel":  # FID needs Inception weights, which the files leave unset
        assert (tmp_path / "experiments" / opt["name"] / "visualization" / "snapshot_00000001.png").is_file()
        assert "FID skipped: val.fid.inception_weights is not set" in capsys.readouterr().err
    elif opt.get("val"):
        assert "validation" in capsys.readouterr().err



@pytest.mark.parametrize("shares, words", [
    ({"clean_prob": 1.5}, ": clean_prob: must be at most 1, got 1.5"),
    ({"clean_prob": 0.6, "bicubic_degrade_prob": 0.5},
     ": bicubic_degrade_prob: clean_prob + bicubic_degrade_prob must be at most 1"),
])
def test_bad_bicubic_shares_name_the_option(data, random_vgg19, tmp_path, monkeypatch, capsys, shares, words):
    path = REPO / "options" / "train" / "default" / "train_restoregen_real_x4.yml"
    opt = shrink(yaml.safe_load(path.read_text()), data, random_vgg19)
    opt.update(shares)
    options = tmp_path / path.name
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-opt", str(options)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err

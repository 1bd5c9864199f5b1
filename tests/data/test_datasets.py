"""SR datasets: bicubic pairs equal a whole-image MATLAB downscale, paired folders and LMDB read
the same pixels, crops stay aligned under flips and rotations."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from restoregen._compat import import_basicsr
from restoregen.data import build_dataset
from restoregen.data.loader import seeded_rngs

SCALE = 2


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """GT photos (BGR PNG) and their x2 MATLAB-bicubic LQ (named '<stem>x2.png')."""
    import skimage.data

    imresize = import_basicsr("utils.matlab_functions").imresize
    root = tmp_path_factory.mktemp("data")
    (root / "gt").mkdir()
    (root / "lq").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        image = np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1])
        image = cv2.resize(image, (70, 58), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "gt" / f"{name}.png"), image)
        lq = imresize(image.astype(np.float32) / 255.0, 1 / SCALE)
        cv2.imwrite(str(root / "lq" / f"{name}x2.png"), np.clip(lq * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return root


def section(root, **extra):
    opt = {"name": "t", "type": "PairedImageDataset", "dataroot_gt": str(root / "gt"), "dataroot_lq": str(root / "lq"),
           "filename_tmpl": "{}x2", "io_backend": {"type": "disk"}, "scale": SCALE, "phase": "train", "gt_size": 24,
           "use_hflip": True, "use_rot": True}
    opt.update(extra)
    return opt


def test_bicubic_crop_equals_the_whole_image_downscale(folders):
    imresize = import_basicsr("utils.matlab_functions").imresize
    dataset = build_dataset(section(folders, type="BicubicPairedDataset", dataroot_lq=None, use_hflip=False,
                                    use_rot=False, gt_size=16))
    whole = cv2.imread(str(folders / "gt" / "coffee.png")).astype(np.float32) / 255.0
    whole = whole[: whole.shape[0] // SCALE * SCALE, : whole.shape[1] // SCALE * SCALE]
    whole_lq = torch.from_numpy(imresize(whole, 1 / SCALE)[..., ::-1].copy()).permute(2, 0, 1)
    index = [p.endswith("coffee.png") for p in dataset.paths].index(True)
    corners = set()
    for seed in range(12):
        random.seed(seed)
        top, left = random.randint(0, whole_lq.shape[1] - 8), random.randint(0, whole_lq.shape[2] - 8)
        with seeded_rngs(seed):
            item = dataset[index]
        corners.add((top, left))
        assert torch.allclose(item["lq"], whole_lq[:, top:top + 8, left:left + 8], atol=1e-6)
        gt = torch.from_numpy(whole[..., ::-1].copy()).permute(2, 0, 1)
        assert torch.equal(item["gt"], gt[:, top * SCALE:(top + 8) * SCALE, left * SCALE:(left + 8) * SCALE])
    assert any(top == 0 or left == 0 for top, left in corners) or len(corners) > 6  # borders and the inside are covered


def test_bicubic_validation_item_is_the_whole_image(folders):
    dataset = build_dataset(section(folders, type="BicubicPairedDataset", dataroot_lq=None, phase="val"))
    item = dataset[0]
    assert item["gt"].shape == (3, 58, 70) and item["lq"].shape == (3, 29, 35)


def test_paired_crops_stay_aligned_under_flips_and_rotations(folders):
    dataset = build_dataset(section(folders))
    seen = set()
    for seed in range(16):
        with seeded_rngs(seed):
            item = dataset[seed % len(dataset)]
        assert item["gt"].shape == (3, 24, 24) and item["lq"].shape == (3, 12, 12)
        down = torch.nn.functional.avg_pool2d(item["gt"][None], SCALE)[0]
        assert (down - item["lq"]).abs().mean() < 0.03  # the LQ is this GT's downscale, same orientation
        seen.add(tuple(item["gt"][:, 0, 0].tolist()))
    assert len(seen) > 8


def test_flips_and_rotations_are_all_drawn(folders):
    dataset = build_dataset(section(folders, gt_size=58))  # crop = whole height: only flips/rotation vary
    firsts = set()
    for seed in range(40):
        with seeded_rngs(seed):
            item = dataset[0]
        firsts.add(tuple(item["gt"][:, 0, 0].tolist()))
    assert len(firsts) >= 3


def test_same_seed_same_item(folders):
    dataset = build_dataset(section(folders))
    with seeded_rngs(7):
        a = dataset[1]
    with seeded_rngs(7):
        b = dataset[1]
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])


def test_image_list_and_meta_info(folders, tmp_path):
    listed = build_dataset(section(folders, type="BicubicPairedDataset", image_list=["coffee.png"]))
    assert [p.split("/")[-1] for p in listed.paths] == ["coffee.png"]
    meta = tmp_path / "meta.txt"
    meta.write_text("chelsea.png (58,70,3)\nastronaut.png (58,70,3)\n")
    paired = build_dataset(section(folders, meta_info_file=str(meta)))
    assert [p["lq_path"].split("/")[-1] for p in paired.paths] == ["chelsea" + "x2.png", "astronautx2.png"]


def test_missing_lq_is_reported(folders):
    with pytest.raises(ValueError, match="no LQ image for .*astronaut.png.*expected .*lq/astronaut.png"):
        build_dataset(section(folders, filename_tmpl="{}"))


def test_lmdb_reads_the_same_pixels(folders, tmp_path):
    make_lmdb = import_basicsr("utils.lmdb_util").make_lmdb_from_imgs
    for kind, suffix in (("gt", ""), ("lq", "x2")):
        names = sorted(p.name for p in (folders / kind).iterdir())
        keys = [n.replace(f"{suffix}.png", "") for n in names]
        make_lmdb(str(folders / kind), str(tmp_path / f"{kind}.lmdb"), names, keys)
    lmdb_set = build_dataset(section(folders, dataroot_gt=str(tmp_path / "gt.lmdb"),
                                     dataroot_lq=str(tmp_path / "lq.lmdb"), io_backend={"type": "lmdb"}, phase="val"))
    disk_set = build_dataset(section(folders, phase="val"))
    assert len(lmdb_set) == len(disk_set) == 3
    for i in range(3):
        a, b = lmdb_set[i], disk_set[i]
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])


def test_single_image_dataset(folders):
    dataset = build_dataset({"name": "s", "type": "SingleImageDataset", "dataroot_lq": str(folders / "lq"),
                             "io_backend": {"type": "disk"}, "phase": "test", "scale": 2})
    assert len(dataset) == 3 and set(dataset[0]) == {"lq", "lq_path"}


def test_decode_refuses_unreadable_data(tmp_path):
    from restoregen.data.files import decode

    with pytest.raises(ValueError, match="not a readable image"):
        decode(b"not an image at all", "x.png")

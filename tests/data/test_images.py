"""GAN image datasets: StyleSwin's torchvision transform, flips, LMDB stores; differentiable
augmentation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from restoregen.data import build_dataset
from restoregen.data.diffaug import BCR_POLICY, diff_augment, parse_policy
from restoregen.data.loader import seeded_rngs


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan_images")
    rng = np.random.default_rng(0)
    (root / "class_a").mkdir()
    for i, size in enumerate([(40, 30), (24, 24), (17, 33)]):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "class_a" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / "gray.png")
    return root


def section(**kwargs) -> dict:
    return {"name": "x", "type": "ImageFolderDataset", "phase": "train", "size": 16, **kwargs}


def test_items_equal_the_official_torchvision_transform(folder):
    from torchvision import transforms

    dataset = build_dataset(section(dataroot=str(folder)))
    official = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor(),
                                   transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    assert len(dataset) == 4  # recursive, gray converted to RGB
    for item in dataset:
        with Image.open(item["path"]) as image:
            expected = official(image.convert("RGB"))
        assert item["img"].shape == (3, 16, 16)
        torch.testing.assert_close(item["img"], expected, atol=1e-6, rtol=0)


def test_flip_is_random_per_item_and_off_for_evaluation(folder):
    plain = build_dataset(section(dataroot=str(folder)))[0]["img"]
    flipping = build_dataset(section(dataroot=str(folder), use_hflip=True))
    seen = set()
    for seed in range(8):
        with seeded_rngs(seed):
            image = flipping[0]["img"]
        seen.add(torch.equal(image, plain.flip(-1)))
        assert torch.equal(image, plain) or torch.equal(image, plain.flip(-1))
    assert seen == {True, False}
    evaluation = build_dataset(section(dataroot=str(folder), use_hflip=True, phase="val"))
    assert all(torch.equal(evaluation[0]["img"], plain) for _ in range(4))


def test_lmdb_store_of_stylegan2_prepare_data(folder, tmp_path):
    import lmdb

    files = sorted((folder / "class_a").iterdir())
    with lmdb.open(str(tmp_path / "store"), map_size=1 << 22) as env, env.begin(write=True) as txn:
        for i, path in enumerate(files):
            txn.put(f"16-{i:05d}".encode(), path.read_bytes())
        txn.put(b"length", str(len(files)).encode())
    store = build_dataset({"name": "x", "type": "LMDBImageDataset", "phase": "train", "size": 16,
                           "dataroot": str(tmp_path / "store")})
    images = build_dataset(section(dataroot=str(folder / "class_a")))
    assert len(store) == 3
    for i in range(3):
        assert torch.equal(store[i]["img"], images[i]["img"])
    lmdb.open(str(tmp_path / "empty"), map_size=1 << 20).close()
    for root, problem in (("empty", "no 'length' key"), ("nowhere", "cannot open LMDB store")):
        with pytest.raises(ValueError, match=problem):
            build_dataset({"name": "x", "type": "LMDBImageDataset", "size": 16, "dataroot": str(tmp_path / root)})


def test_diff_augment_operations():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    assert diff_augment(x, BCR_POLICY, p=0.0) is x
    shifted = diff_augment(x, ["translation"])
    for out, source in zip(shifted.detach(), x.detach(), strict=True):  # a whole-pixel shift of at most 2, zeros behind
        padded = torch.nn.functional.pad(source, (2, 2, 2, 2))
        assert any(torch.allclose(out, padded[:, 2 + dy:18 + dy, 2 + dx:18 + dx], atol=1e-5)
                   for dy, dx in itertools.product(range(-2, 3), repeat=2))
    cut = diff_augment(x, ["cutout"]).detach()
    zeros = (cut == 0).all(dim=1)  # one square of up to 8x8 pixels per sample, clipped at the borders
    assert all(0 < z.sum() <= 64 and z.any(0).sum() * z.any(1).sum() == z.sum() for z in zeros)
    flipped = diff_augment(x, ["flip"]).detach()
    assert all(torch.equal(f, s) or torch.equal(f, s.flip(-1)) for f, s in zip(flipped, x.detach(), strict=True))
    out = diff_augment(x, BCR_POLICY)
    out.square().sum().backward()  # differentiable: the gradient reaches the input
    assert x.grad is not None and x.grad.abs().sum() > 0
    half = diff_augment(x.detach(), ["cutout"], p=0.5)  # ADA-style: each sample with probability p
    unchanged = [torch.equal(a, b) for a, b in zip(half, x.detach(), strict=True)]
    assert 0 < sum(unchanged) < 6
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        parse_policy("color,blur")
    assert parse_policy(" color, cutout ") == ("color", "cutout")

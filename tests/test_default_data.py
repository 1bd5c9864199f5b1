"""The bundled models' corpus (scripts/prepare_default_data.py): only the allowed sources, and the
held-out photos never reach training."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.scripts import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepare():
    yield load_script("prepare_default_data")
    del sys.modules["prepare_default_data"]


def _image_lists() -> dict[str, list[str]]:
    files = sorted((REPO / "options" / "train" / "default").glob("*.yml"))
    return {p.name: yaml.safe_load(p.read_text())["datasets"]["train"].get("image_list") or [] for p in files}


def test_held_out_set_is_fixed_large_enough_and_from_the_allowed_sources(prepare) -> None:
    assert len(set(prepare.HELD_OUT)) == len(prepare.HELD_OUT) >= 12
    assert not set(prepare.HELD_OUT) & set(prepare.VALIDATION)
    for photo_id in (*prepare.HELD_OUT, *prepare.VALIDATION, *prepare.candidate_ids(None)):
        assert photo_id.split(":", 1)[0] in prepare.ALLOWED_SOURCES, photo_id
    assert set(prepare.ALLOWED_SOURCES) == {"skimage", "mate-backgrounds", "lomiri-wallpapers",
                                            "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
                                            "plasma-workspace-wallpapers", "gnome-backgrounds",
                                            "tuxpaint-stamps-default", "ukui-wallpapers"}


def test_held_out_wallpapers_are_the_draw_among_those_the_first_model_never_saw(prepare) -> None:
    """The rule of the comment above HELD_OUT: the four wallpapers with the smallest sha256 among
    those new to the corpus (not in the first model's image lists, not held out by it)."""
    seen = {name for names in _image_lists().values() for name in names}
    first_five = set(prepare.HELD_OUT[:5])
    new = [i for i in prepare.candidate_ids(None) if i.split(":")[0] != "skimage" and i not in first_five
           and prepare.Photo(i, np.zeros((1, 1, 3), np.uint8)).name + ".png" not in seen]
    drawn = [i for i in prepare.HELD_OUT[5:] if not i.startswith("tuxpaint")]
    assert sorted(drawn) == sorted(prepare.held_out_draw(new, 4))


def test_option_files_train_only_on_training_photos(prepare) -> None:
    train_names = {prepare.Photo(i, np.zeros((1, 1, 3), np.uint8)).name + ".png"
                   for i in prepare.candidate_ids(None) if prepare.split_of(i) == "train"}
    for name, images in _image_lists().items():
        assert set(images) <= train_names, f"{name}: names photos the prepare script does not train on"
    for path in sorted((REPO / "options" / "train" / "default").glob("*.yml")):
        train = yaml.safe_load(path.read_text())["datasets"]["train"]
        if train.get("io_backend", {}).get("type") == "lmdb":
            assert train["dataroot_gt"] == "datasets/default_sr/train.lmdb", path.name


def _fake_packages(root: Path, prepare) -> None:
    """A few photos at the packages' real paths, plus a tuxpaint photo stamp and a cartoon stamp."""
    rng = np.random.default_rng(0)
    for photo_id in ("mate-backgrounds:nature/Aqua.jpg", "mate-backgrounds:nature/Dune.jpg",
                     "lomiri-wallpapers-16.04:free_by_Peter_Nerlich.jpg",
                     "lomiri-wallpapers-16.04:Bridge_by_Sander_Klootwijk.jpg"):
        source, path = photo_id.split(":", 1)
        file = root / source / prepare.PACKAGES[source] / path
        file.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(file), rng.integers(0, 256, (300, 420, 3), dtype=np.uint8))
    stamps = root / "tuxpaint-stamps-default" / prepare.PACKAGES["tuxpaint-stamps-default"]
    (stamps / "animals").mkdir(parents=True)
    photo = np.zeros((150, 170, 4), np.uint8)
    photo[..., :3] = rng.integers(0, 256, (150, 170, 3))
    photo[10:140, 20:150, 3] = 255  # an opaque 130x130 rectangle in a transparent frame
    cv2.imwrite(str(stamps / "animals" / "owl.png"), photo)
    cartoon = np.zeros((150, 150, 4), np.uint8)
    cartoon[..., 2] = 200
    cartoon[..., 3] = 255
    cv2.imwrite(str(stamps / "animals" / "cartoon_cat.png"), cartoon)
    held = stamps / "food" / "fruit"
    held.mkdir(parents=True)
    cv2.imwrite(str(held / "cherimoya.png"), photo)


def test_corpus_holds_no_held_out_photo(prepare, tmp_path: Path, capsys) -> None:
    _fake_packages(tmp_path / "packages", prepare)
    out = tmp_path / "corpus"
    assert prepare.main(["--packages", str(tmp_path / "packages"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and "photos" in printed and "megapixels" in printed and "patches" in printed
    keys = [line.split(" ")[0] for line in (out / "train.lmdb" / "meta_info.txt").read_text().splitlines()]
    sources = {key.split("__")[0] for key in keys}
    assert sources <= set(prepare.ALLOWED_SOURCES)
    assert {"mate-backgrounds", "lomiri-wallpapers-16.04", "tuxpaint-stamps-default", "skimage"} <= sources
    photos = {key.split("__")[1] for key in keys}
    held_out = {p.stem for p in (out / "test").glob("*.png")}
    assert {"mate_Dune", "lomiri_free", "skimage_astronaut", "tuxpaint_food-fruit-cherimoya"} <= held_out
    assert not photos & held_out
    assert not photos & {"skimage_coffee"}  # validation
    assert "tuxpaint_animals-owl" in photos and "tuxpaint_animals-cartoon_cat" not in photos
    owl = cv2.imread(str(out / "train" / "tuxpaint_animals-owl.png"))
    assert owl.shape == (130, 130, 3)  # cropped to the opaque rectangle


def test_pack_builds_the_same_training_corpus_and_holds_no_other_photo(prepare, tmp_path, monkeypatch, capsys) -> None:
    import json

    ids = ["skimage:camera", "skimage:coffee", "skimage:astronaut"]  # a training, the validation, a held-out photo
    monkeypatch.setattr(prepare, "candidate_ids", lambda packages: ids)
    pack = tmp_path / "pack"
    assert prepare.main(["--out", str(tmp_path / "a"), "--pack", str(pack)]) == 0
    manifest = json.loads((pack / "photos.json").read_text())
    assert [entry["id"] for entry in manifest] == ["skimage:camera"]
    assert prepare.main(["--out", str(tmp_path / "b"), "--from-pack", str(pack)]) == 0
    for name in ("train.lmdb/meta_info.txt", "train/skimage_camera.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert not list((tmp_path / "b" / "test").iterdir()) and not list((tmp_path / "b" / "val").iterdir())

    manifest[0]["id"] = "skimage:astronaut"
    (pack / "photos.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert prepare.main(["--out", str(tmp_path / "c"), "--from-pack", str(pack)]) == 2
    assert "held-out or validation photo" in capsys.readouterr().err
    manifest[0]["id"] = "skimage:camera"
    (pack / "photos.json").write_text(json.dumps(manifest))
    cv2.imwrite(str(pack / manifest[0]["file"]), np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert prepare.main(["--out", str(tmp_path / "c"), "--from-pack", str(pack)]) == 2
    assert "not the packed pixels" in capsys.readouterr().err

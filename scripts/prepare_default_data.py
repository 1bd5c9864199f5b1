"""Build the training, validation and test photos of the bundled default model.

Sources: scikit-image's sample photos (``skimage.data``, shipped with the package), Debian's
``mate-backgrounds`` photos and, from stage 3 on, the photos of Debian's ``lomiri-wallpapers-16.04``,
``lomiri-wallpapers-20.04`` and ``plasma-workspace-wallpapers``. Get the packages without
installing them:

    apt-get download mate-backgrounds && dpkg -x mate-backgrounds_*.deb mate-backgrounds
    apt-get download lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers
    for f in lomiri-*.deb plasma-*.deb; do dpkg -x "$f" wallpapers; done

then run (from the folder training will run in; writes ``datasets/default_sr/{train,val,test}``):

    python scripts/prepare_default_data.py --mate mate-backgrounds/usr/share/backgrounds/mate \
        --wallpapers wallpapers

The mate photos are JPEGs at 1.3-4 megapixels; they are reduced to half size (area filter), which
removes most JPEG softness. The wallpaper photos (4-24 megapixels) are reduced by the smallest
integer factor that brings their long side to 2000 pixels or less. Grayscale photos are stored as
3-channel PNGs. The file names written here are the ``image_list`` of the option files in
``options/train/default/`` (stages 1 and 2 use the scikit-image and mate photos only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# name -> source ("skimage:<function>", "mate:<path>" or "wallpapers:<path>", paths relative to
# the --mate / --wallpapers folder)
TRAIN = {
    **{f"mate_{Path(p).stem}.png": f"mate:{p}" for p in (
        "nature/Aqua.jpg", "nature/Blinds.jpg", "nature/FreshFlower.jpg", "nature/Garden.jpg",
        "nature/GreenMeadow.jpg", "nature/RainDrops.jpg", "nature/Storm.jpg", "nature/TwoWings.jpg",
        "nature/Wood.jpg", "nature/YellowFlower.jpg", "abstract/Elephants.jpg")},
    **{f"skimage_{n}.png": f"skimage:{n}" for n in (
        "camera", "coins", "moon", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
        "retina", "page", "text", "cell")},
}
# added in stage 3: natural photos from lomiri-wallpapers-16.04/-20.04 and plasma-workspace-wallpapers
WALLPAPERS = {
    **{f"lomiri_{Path(p).stem.split('_by_')[0]}.png": f"wallpapers:usr/share/backgrounds/{p}" for p in (
        "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
        "aitzgorri_by_Aitzol_Berasategi.jpg", "analogpattern_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg", "life_by_Aitzol_Berasategi.jpg",
        "picosdeeuropa_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
        "sunset_by_Aitzol_Berasategi.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
        "Painting-Colors_by__herobrine7gamer.jpg")},
    **{f"plasma_{n}.png": f"wallpapers:usr/share/wallpapers/{n}/contents/images/2560x1600.jpg" for n in (
        "BytheWater", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "OneStandsOut", "Path")},
}
TRAIN.update(WALLPAPERS)
MAX_SIDE = 2000  # wallpaper photos are reduced to at most this long side
VAL = {"skimage_coffee.png": "skimage:coffee"}
TEST = {  # held out: never seen in training or validation
    "skimage_astronaut.png": "skimage:astronaut",
    "skimage_chelsea.png": "skimage:chelsea",
    "skimage_rocket.png": "skimage:rocket",
    "mate_LadyBird.png": "mate:nature/LadyBird.jpg",
    "mate_Dune.png": "mate:nature/Dune.jpg",
}


def load(source: str, mate: Path | None, wallpapers: Path | None) -> np.ndarray | None:
    """The photo as 8-bit BGR, or None when its source is not available."""
    import cv2

    kind, name = source.split(":", 1)
    if kind == "skimage":
        import skimage.data

        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return np.ascontiguousarray(image[..., :3][..., ::-1])
    root = mate if kind == "mate" else wallpapers
    if root is None or not (root / name).is_file():
        return None
    image = cv2.imread(str(root / name), cv2.IMREAD_COLOR)
    factor = 2 if kind == "mate" else -(-max(image.shape[:2]) // MAX_SIDE)
    if factor == 1:
        return image
    return cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)


def main() -> int:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mate", type=Path, help="the extracted usr/share/backgrounds/mate folder")
    parser.add_argument("--wallpapers", type=Path,
                        help="where the lomiri-wallpapers and plasma-workspace-wallpapers packages were extracted")
    parser.add_argument("--out", type=Path, default=Path("datasets/default_sr"))
    args = parser.parse_args()
    missing = []
    for split, images in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in images.items():
            image = load(source, args.mate, args.wallpapers)
            if image is None:
                missing.append(source)
                continue
            cv2.imwrite(str(folder / name), image)
        print(f"{folder}: {len(list(folder.glob('*.png')))} images")
    if missing:
        print(f"not available (pass --mate / --wallpapers): {', '.join(missing)}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())

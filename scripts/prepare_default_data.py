"""Build the training, validation and test photos of the bundled default model.

Sources: scikit-image's sample photos (``skimage.data``, shipped with the package) and Debian's
``mate-backgrounds`` photos. Get the latter without installing it:

    apt-get download mate-backgrounds && dpkg -x mate-backgrounds_*.deb mate-backgrounds

then run (from the folder training will run in; writes ``datasets/default_sr/{train,val,test}``):

    python scripts/prepare_default_data.py --mate mate-backgrounds/usr/share/backgrounds/mate

The mate photos are JPEGs at 1.3-4 megapixels; they are reduced to half size (area filter), which
removes most JPEG softness. Grayscale photos are stored as 3-channel PNGs. The file names written
here are the ``image_list`` of ``options/train/default/train_default_HAT_SRx4.yml``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# name -> source ("skimage:<function>" or "mate:<relative path>")
TRAIN = {
    **{f"mate_{Path(p).stem}.png": f"mate:{p}" for p in (
        "nature/Aqua.jpg", "nature/Blinds.jpg", "nature/FreshFlower.jpg", "nature/Garden.jpg",
        "nature/GreenMeadow.jpg", "nature/RainDrops.jpg", "nature/Storm.jpg", "nature/TwoWings.jpg",
        "nature/Wood.jpg", "nature/YellowFlower.jpg", "abstract/Elephants.jpg")},
    **{f"skimage_{n}.png": f"skimage:{n}" for n in (
        "camera", "coins", "moon", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
        "retina", "page", "text", "cell")},
}
VAL = {"skimage_coffee.png": "skimage:coffee"}
TEST = {  # held out: never seen in training or validation
    "skimage_astronaut.png": "skimage:astronaut",
    "skimage_chelsea.png": "skimage:chelsea",
    "skimage_rocket.png": "skimage:rocket",
    "mate_LadyBird.png": "mate:nature/LadyBird.jpg",
    "mate_Dune.png": "mate:nature/Dune.jpg",
}


def load(source: str, mate: Path | None) -> np.ndarray | None:
    """The photo as 8-bit BGR, or None when its source is not available."""
    import cv2

    kind, name = source.split(":", 1)
    if kind == "skimage":
        import skimage.data

        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return np.ascontiguousarray(image[..., :3][..., ::-1])
    if mate is None or not (mate / name).is_file():
        return None
    image = cv2.imread(str(mate / name), cv2.IMREAD_COLOR)
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def main() -> int:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mate", type=Path, help="the extracted usr/share/backgrounds/mate folder")
    parser.add_argument("--out", type=Path, default=Path("datasets/default_sr"))
    args = parser.parse_args()
    missing = []
    for split, images in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in images.items():
            image = load(source, args.mate)
            if image is None:
                missing.append(source)
                continue
            cv2.imwrite(str(folder / name), image)
        print(f"{folder}: {len(list(folder.glob('*.png')))} images")
    if missing:
        print(f"not available (pass --mate): {', '.join(missing)}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the small image folder of the StyleSwin CPU demo (options/train/StyleSwin/train_StyleSwin_demo_32.yml).

Random square crops (a quarter to a half of the shorter side, random position, random left-right
mirror) of photos, reduced to ``--size`` pixels with an area filter. Sources: scikit-image's
sample photos (``skimage.data``, shipped with the package) and, with ``--mate``, the nature photos
of Debian's ``mate-backgrounds`` (get them without installing:
``apt-get download mate-backgrounds && dpkg -x mate-backgrounds_*.deb mate-backgrounds``):

    python scripts/prepare_styleswin_demo.py datasets/styleswin_demo \\
        --mate mate-backgrounds/usr/share/backgrounds/mate

The crops are seeded (``--seed``), so the same sources give the same folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "colorwheel")
MATE_PHOTOS = ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
               "TwoWings", "Wood", "YellowFlower")


def sources(mate: Path | None) -> dict[str, np.ndarray]:
    """Name -> 8-bit RGB photo."""
    import skimage.data
    from PIL import Image

    photos = {}
    for name in SKIMAGE_PHOTOS:
        image = getattr(skimage.data, name)()
        photos[f"skimage_{name}"] = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    if mate is not None:
        for name in MATE_PHOTOS:
            path = mate / "nature" / f"{name}.jpg"
            if path.is_file():
                with Image.open(path) as image:
                    photos[f"mate_{name}"] = np.asarray(image.convert("RGB"))
            else:
                print(f"prepare_styleswin_demo: {path} not found, skipped")
    return photos


def crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    height, width = photo.shape[:2]
    side = int(rng.uniform(0.25, 0.5) * min(height, width))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    patch = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BOX)
    array = np.asarray(patch)
    return array[:, ::-1] if rng.random() < 0.5 else array


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (created)")
    parser.add_argument("--mate", type=Path, default=None, help="mate-backgrounds' share/backgrounds/mate folder")
    parser.add_argument("--per-photo", type=int, default=100, help="crops per photo (default 100)")
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from PIL import Image

    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, photo in sources(args.mate).items():
        for index in range(args.per_photo):
            patch = np.ascontiguousarray(crop(photo, args.size, rng))
            Image.fromarray(patch).save(args.out / f"{name}_{index:04d}.png")
            count += 1
    print(f"prepare_styleswin_demo: wrote {count} crops of {args.size}x{args.size} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Write the sample photos of README's quick start: ``photos/`` at the top of the repository.

    python scripts/prepare_sample_photos.py [FOLDER]      (default: photos/ next to scripts/)

Three photos from scikit-image's ``skimage.data``, reduced with area averaging to at most 320
pixels on the long side, as JPEG quality 90, so that ``restoregen upscale photos/ photos_x4/`` with
the bundled x4 model takes seconds on a CPU. Their licences, as scikit-image's docstrings record
them (README repeats them): ``astronaut`` (Eileen Collins, NASA Great Images database): "No known
copyright restrictions, released into the public domain"; ``coffee`` (Pikolo Espresso Bar,
photographer Rachel Michetti) and ``chelsea`` (photographer Stefan van der Walt): "No copyright
restrictions. CC0 by the photographer".
"""

from __future__ import annotations

import sys
from pathlib import Path

LONG_SIDE = 320
PHOTOS = {"astronaut": 256, "coffee": 300, "chelsea": LONG_SIDE}  # name -> long side in pixels


def main(argv: list[str]) -> int:
    import numpy as np
    import skimage.data
    from PIL import Image

    folder = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name, side in PHOTOS.items():
        image = Image.fromarray(np.asarray(getattr(skimage.data, name)()))
        scale = side / max(image.size)
        small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BOX)
        path = folder / f"{name}.jpg"
        small.save(path, quality=90)
        print(f"{path}: {small.width}x{small.height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

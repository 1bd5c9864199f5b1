"""Build the training corpus, validation and held-out test photos of the bundled models.

Sources, and only these: scikit-image's sample photos (``skimage.data``, shipped with the package)
and the photographs in Debian's wallpaper and stamp packages. Get the packages without installing
them (any folder; each package is extracted into its own sub-folder):

    mkdir debs && cd debs && apt-get download mate-backgrounds lomiri-wallpapers lomiri-wallpapers-16.04 \\
        lomiri-wallpapers-20.04 plasma-workspace-wallpapers gnome-backgrounds tuxpaint-stamps-default \\
        ukui-wallpapers && cd ..
    for f in debs/*.deb; do dpkg -x "$f" "packages/$(basename "$f" | cut -d_ -f1)"; done

then, from the folder training will run in (writes ``datasets/default_sr/``):

    python scripts/prepare_default_data.py --packages packages

Output: ``train.lmdb`` (BasicSR's LMDB layout: sub-images of at most ``--patch`` pixels a side,
keys ``<source>__<photo>__<index>``; the training option files read it), ``train/`` (the whole
training photos as PNG, named as the ``image_list`` of the first model's stages 1-3), ``val/``
(scikit-image's coffee) and ``test/`` (the held-out photos, :data:`HELD_OUT`, as PNG;
``scripts/eval_default.py`` reads them). Only the photographs of each package are used: the packages'
drawings and renders are not listed in :data:`WALLPAPERS`, and tuxpaint's stamps are kept when their
opaque part is photographic (:func:`is_photographic`).

Reductions: mate's photos to half size and the other wallpapers by the smallest integer factor that
brings their long side to 2000 pixels or less (area filter; this removes most JPEG softness, as
DIV2K's 2K photos are used for SR training); tuxpaint stamps are cropped to the largest fully opaque
rectangle. Grayscale photos become 3-channel.

For a machine without the packages (a lent GPU machine; ``scripts/gpu_check.py``'s ``train_bundled``
step), ``--pack DIR`` also writes the training photos, never the held-out or validation ones, to DIR
as lossless WebP with a manifest (``photos.json``: id, file, sha256 of the pixels; about 40 MiB), and
``--from-pack DIR`` builds the same corpus from them.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Debian packages this corpus may use, and where their pictures lie inside each package
PACKAGES = {
    "mate-backgrounds": "usr/share/backgrounds/mate",
    "lomiri-wallpapers": "usr/share/backgrounds",
    "lomiri-wallpapers-16.04": "usr/share/backgrounds",
    "lomiri-wallpapers-20.04": "usr/share/backgrounds",
    "plasma-workspace-wallpapers": "usr/share/wallpapers",
    "gnome-backgrounds": "usr/share/backgrounds/gnome",
    "tuxpaint-stamps-default": "usr/share/tuxpaint/stamps",
    "ukui-wallpapers": "usr/share/backgrounds",
}
ALLOWED_SOURCES = ("skimage", *PACKAGES)

SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
                  "stereo_motorcycle")
# The photographs among the wallpapers (looked at one by one; the other files are drawings, renders or
# abstract art: gnome-backgrounds, ukui-wallpapers and lomiri-wallpapers hold none).
WALLPAPERS = {
    "mate-backgrounds": [f"nature/{n}.jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
        "TwoWings", "Wood", "YellowFlower")] + ["abstract/Elephants.jpg"],
    "lomiri-wallpapers-16.04": [f"{n}.jpg" for n in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
        "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich",
        "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
        "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
        "sunset_by_Aitzol_Berasategi")],  # umang_by_Abhishek_Mudgal is a smooth synthetic gradient
    "lomiri-wallpapers-20.04": [f"{n}.jpg" for n in (
        "Infinite-Sea_by_Aury88", "Kleiber_by_Lukas_Baubkus", "Painting-Colors_by__herobrine7gamer")],
    # plasma ships each wallpaper in several sizes: the largest is used
    "plasma-workspace-wallpapers": [f"{n}/contents/images" for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
        "OneStandsOut", "Path", "summer_1am")],
}
VALIDATION = ("skimage:coffee",)
# Held out from training and from choosing settings; scripts/eval_default.py measures on these.
# The first five were held out by the first bundled model. The others were drawn, before any model
# saw them, as the photos of the sources new to the corpus with the smallest sha256 of their id
# (four wallpapers, three tuxpaint stamps of at least 160 pixels a side): see held_out_draw(). The
# first draw held lomiri's umang, a smooth synthetic gradient, which then left the corpus; Kite was
# the next wallpaper in the draw.
HELD_OUT = (
    "skimage:astronaut", "skimage:chelsea", "skimage:rocket",
    "mate-backgrounds:nature/LadyBird.jpg", "mate-backgrounds:nature/Dune.jpg",
    "lomiri-wallpapers-16.04:Picture_1A_by_freespace.jpg",
    "lomiri-wallpapers-16.04:free_by_Peter_Nerlich.jpg",
    "plasma-workspace-wallpapers:Kite/contents/images",
    "plasma-workspace-wallpapers:summer_1am/contents/images",
    "tuxpaint-stamps-default:food/fruit/cherimoya.png",
    "tuxpaint-stamps-default:food/spices/ginger.png",
    "tuxpaint-stamps-default:household/tools/spade.png",
)
MAX_SIDE = 2000  # wallpapers are reduced to at most this long side
MIN_STAMP = 96  # tuxpaint stamps need an opaque rectangle at least this wide and high


@dataclass(frozen=True)
class Photo:
    id: str  # "<source>:<path or name>"
    image: np.ndarray  # 8-bit BGR

    @property
    def source(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        """A file-name-safe short name: ``<source tag>_<stem>``."""
        source, path = self.id.split(":", 1)
        tag = {"skimage": "skimage", "mate-backgrounds": "mate", "lomiri-wallpapers-16.04": "lomiri",
               "lomiri-wallpapers-20.04": "lomiri", "plasma-workspace-wallpapers": "plasma",
               "tuxpaint-stamps-default": "tuxpaint"}.get(source, source)
        parts = Path(path).parts
        stem = parts[0] if source == "plasma-workspace-wallpapers" else Path(path).stem.split("_by_")[0]
        if source == "tuxpaint-stamps-default":
            stem = "-".join(Path(path).with_suffix("").parts)
        return f"{tag}_{stem}"


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    import cv2

    if factor <= 1:
        return image
    return cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def largest_opaque_rectangle(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest axis-aligned rectangle of fully opaque pixels."""
    rows, cols = alpha.shape
    heights = np.zeros(cols + 1, dtype=np.int64)  # a zero sentinel closes every run
    best = (0, 0, 0, 0)
    for row in range(rows):
        heights[:cols] = np.where(alpha[row] == 255, heights[:cols] + 1, 0)
        stack: list[tuple[int, int]] = []  # (start column, height), heights increasing
        for col in range(cols + 1):
            start = col
            while stack and stack[-1][1] >= heights[col]:
                start, height = stack.pop()
                if height * (col - start) > best[2] * best[3]:
                    best = (row - height + 1, start, int(height), col - start)
            stack.append((start, int(heights[col])))
    return best


def is_photographic(image: np.ndarray) -> bool:
    """Photos have texture almost everywhere; drawings and clip art are mostly flat areas of one
    colour (their Laplacian is exactly zero on most pixels)."""
    import cv2

    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    flat = float((np.abs(cv2.Laplacian(gray, cv2.CV_32F)) < 1).mean())
    return flat < 0.3


def stamp(path: Path) -> np.ndarray | None:
    """A tuxpaint stamp's largest opaque rectangle, or None when it is small or not a photo."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or min(image.shape[:2]) < MIN_STAMP or "cartoon" in path.parts:
        return None
    if image.ndim == 3 and image.shape[2] == 4:
        top, left, height, width = largest_opaque_rectangle(image[..., 3])
        image = image[top:top + height, left:left + width]
    image = _bgr(image)
    if min(image.shape[:2]) < MIN_STAMP or not is_photographic(image):
        return None
    return image


def _largest_plasma_image(folder: Path) -> Path | None:
    from PIL import Image

    best, best_area = None, 0
    for path in sorted(folder.glob("*")):
        try:
            with Image.open(path) as probe:
                area = probe.size[0] * probe.size[1]
        except OSError:
            continue
        if area > best_area:
            best, best_area = path, area
    return best


def load(photo_id: str, packages: Path | None) -> np.ndarray | None:
    """The photo as 8-bit BGR, reduced as described above, or None when its package is missing."""
    import cv2

    source, path = photo_id.split(":", 1)
    if source == "skimage":
        import skimage.data

        image = getattr(skimage.data, path)()
        return _bgr(image[0] if isinstance(image, tuple) else image)[..., ::-1].copy()
    if packages is None:
        return None
    file = packages / source / PACKAGES[source] / path
    if source == "tuxpaint-stamps-default":
        return stamp(file) if file.is_file() else None
    if source == "plasma-workspace-wallpapers":
        file = _largest_plasma_image(file) if file.is_dir() else None
    if file is None or not file.is_file():
        return None
    image = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{file}: not a readable image")
    factor = 2 if source == "mate-backgrounds" else -(-max(image.shape[:2]) // MAX_SIDE)
    return _reduce(image, factor)


def candidate_ids(packages: Path | None) -> list[str]:
    """Every photo id of the allowed sources (tuxpaint: every stamp file; filtered on loading)."""
    ids = [f"skimage:{name}" for name in SKIMAGE_PHOTOS]
    ids += [f"{source}:{path}" for source, paths in WALLPAPERS.items() for path in paths]
    if packages is not None:
        root = packages / "tuxpaint-stamps-default" / PACKAGES["tuxpaint-stamps-default"]
        ids += [f"tuxpaint-stamps-default:{p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*.png"))]
    return ids


def photos(packages: Path | None) -> Iterator[Photo]:
    for photo_id in candidate_ids(packages):
        image = load(photo_id, packages)
        if image is not None:
            yield Photo(photo_id, image)


PACK_MANIFEST = "photos.json"


def _pixels_sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def write_pack(photo_iter: Iterator[Photo], folder: Path) -> Iterator[Photo]:
    """Passes ``photo_iter`` through, writing its training photos to ``folder``."""
    import json

    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.webp"):
        old.unlink()
    entries = []
    for photo in photo_iter:
        if split_of(photo.id) == "train":
            file = f"{len(entries):03d}.webp"
            if not cv2.imwrite(str(folder / file), photo.image, [cv2.IMWRITE_WEBP_QUALITY, 101]):  # 101: lossless
                raise RuntimeError(f"{folder / file}: WebP encoding failed")
            entries.append({"id": photo.id, "file": file, "sha256": _pixels_sha256(photo.image)})
        yield photo
    (folder / PACK_MANIFEST).write_text(json.dumps(entries, indent=1) + "\n")


def pack_photos(folder: Path) -> Iterator[Photo]:
    """The photos of a ``--pack`` folder, each checked: an allowed source, not held out, pixels as packed."""
    import json

    import cv2

    manifest = folder / PACK_MANIFEST
    if not manifest.is_file():
        raise ValueError(f"{folder}: no {PACK_MANIFEST} (write the pack with --pack {folder})")
    for entry in json.loads(manifest.read_text()):
        photo_id, file = entry["id"], folder / entry["file"]
        if photo_id.split(":", 1)[0] not in ALLOWED_SOURCES:
            raise ValueError(f"{manifest}: {photo_id!r} is not from an allowed source")
        if split_of(photo_id) != "train":
            raise ValueError(f"{manifest}: {photo_id!r} is a held-out or validation photo and must not be packed")
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None or _pixels_sha256(image) != entry["sha256"]:
            raise ValueError(f"{file}: missing, unreadable or not the packed pixels of {photo_id}")
        yield Photo(photo_id, image)


def held_out_draw(ids: list[str], count: int) -> list[str]:
    """The ``count`` ids with the smallest sha256: a fixed draw that no look at the images steers."""
    return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())[:count]


def split_of(photo_id: str) -> str:
    if photo_id in HELD_OUT:
        return "test"
    if photo_id in VALIDATION:
        return "val"
    return "train"


def patches(image: np.ndarray, size: int, step: int) -> Iterator[np.ndarray]:
    """Sub-images of at most ``size`` pixels a side, ``step`` apart, the last ones flush with the edges."""
    height, width = image.shape[:2]

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        return sorted(set(list(range(0, length - size, step)) + [length - size]))

    for top in starts(height):
        for left in starts(width):
            yield image[top:top + size, left:left + size]


def write_corpus(photo_iter: Iterator[Photo], out: Path, patch: int, step: int) -> dict[str, dict]:
    """Writes train.lmdb, val/ and test/ under ``out``; returns per split: photos, megapixels, patches."""
    import cv2

    from restoregen._compat import import_basicsr

    lmdb_util = import_basicsr("utils.lmdb_util")
    for split in ("train", "val", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    lmdb_path = out / "train.lmdb"
    if lmdb_path.exists():
        import shutil

        shutil.rmtree(lmdb_path)
    maker = lmdb_util.LmdbMaker(str(lmdb_path), map_size=8 << 30, batch=500, compress_level=1)
    stats = {split: {"photos": 0, "megapixels": 0.0, "patches": 0} for split in ("train", "val", "test")}
    try:
        for photo in photo_iter:
            split = split_of(photo.id)
            entry = stats[split]
            entry["photos"] += 1
            entry["megapixels"] += photo.image.shape[0] * photo.image.shape[1] / 1e6
            # whole photos too: the image_list of the first model's stages names them
            cv2.imwrite(str(out / split / f"{photo.name}.png"), photo.image)
            if split != "train":
                continue
            for index, sub in enumerate(patches(photo.image, patch, step)):
                ok, encoded = cv2.imencode(".png", np.ascontiguousarray(sub), [cv2.IMWRITE_PNG_COMPRESSION, 1])
                if not ok:
                    raise RuntimeError(f"{photo.id}: PNG encoding failed")
                key = f"{photo.source}__{photo.name}__{index:03d}"
                maker.put(encoded.tobytes(), key, sub.shape)
                entry["patches"] += 1
            print(f"  {photo.id}: {photo.image.shape[1]}x{photo.image.shape[0]}", flush=True)
    finally:
        maker.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=Path,
                        help="folder holding the extracted packages, one sub-folder per package name")
    parser.add_argument("--out", type=Path, default=Path("datasets/default_sr"))
    parser.add_argument("--pack", type=Path, metavar="DIR",
                        help="also write the training photos to DIR (lossless WebP, manifest)")
    parser.add_argument("--from-pack", type=Path, metavar="DIR",
                        help="build the corpus from the photos of a --pack folder instead of the sources")
    parser.add_argument("--patch", type=int, default=256, help="side of the training sub-images (default 256)")
    parser.add_argument("--step", type=int, default=192, help="distance between sub-images (default 192)")
    args = parser.parse_args(argv)
    if args.packages is not None and not args.packages.is_dir():
        parser.error(f"--packages {args.packages}: no such folder")
    if args.from_pack is not None:
        if args.packages is not None:
            parser.error("--from-pack and --packages: give one source")
        if not (args.from_pack / PACK_MANIFEST).is_file():
            parser.error(f"--from-pack {args.from_pack}: no {PACK_MANIFEST} there")
        missing, source = [], pack_photos(args.from_pack)
    else:
        missing = [name for name in PACKAGES if args.packages is None or not (args.packages / name).is_dir()]
        source = photos(args.packages)
    if args.pack is not None:
        source = write_pack(source, args.pack)
    try:
        stats = write_corpus(source, args.out, args.patch, args.step)
    except ValueError as error:
        print(f"prepare_default_data: error: {error}", file=sys.stderr)
        return 2
    for split, entry in stats.items():
        print(f"{split:>5}: {entry['photos']} photos, {entry['megapixels']:.1f} megapixels"
              + (f", {entry['patches']} patches of at most {args.patch}x{args.patch}" if split == "train" else ""))
    print(f"written to {args.out}" + (f"; pack in {args.pack}" if args.pack is not None else ""))
    if missing:
        print(f"packages not found under --packages: {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
